//go:build !linux

package main

import "syscall"

// childAttr: elsewhere the sidecar shares the demo's process group, and
// Ctrl-C reaches both (the sidecar drains on its own).
func childAttr() *syscall.SysProcAttr { return nil }
