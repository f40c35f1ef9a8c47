//go:build !linux

package childproc

import "syscall"

// procAttr puts a child in its own process group (see the package comment).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
