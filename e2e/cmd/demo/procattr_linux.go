package main

import "syscall"

// childAttr keeps the sidecar out of the terminal's process group, so that
// Ctrl-C reaches the demo alone and the demo stops the sidecar in order;
// and the kernel sends it SIGTERM should the demo die without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
