//go:build linux

package chaos

import "syscall"

// childProcAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only the chaos run (which then stops its children in
// order), and has the kernel kill the child if the run itself dies, so no
// daemon or sandbox outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
