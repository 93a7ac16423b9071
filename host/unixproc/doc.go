// Package unixproc runs the unix target: the application as an ordinary
// host process on the host's network, with its block devices and file
// trees mapped to host files and directories through the same manifest the
// unikernel targets use. It is the development loop; debuggers and
// profilers work as on any process.
package unixproc
