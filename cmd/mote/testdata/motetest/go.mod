module example.com/motetest

go 1.24
