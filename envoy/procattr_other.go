//go:build !linux

package envoy

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
