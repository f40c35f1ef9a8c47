//go:build !linux

package chaos

import "syscall"

// childProcAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only the chaos run, which then stops its children.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
