module example.com/gotestexec

go 1.24
