//go:build linux

package childproc

import "syscall"

// procAttr puts a child in its own process group and has the kernel kill it
// if the parent dies (see the package comment).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
