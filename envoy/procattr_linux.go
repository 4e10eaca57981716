package envoy

import "syscall"

// sysProcAttr kills Envoy when the process that started it dies, so a
// crashed or timed-out test run leaves no Envoy behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
