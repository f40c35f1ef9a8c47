package main

import (
	"context"
	"errors"
)

// cmdBench is being written (issue 6).
func cmdBench(ctx context.Context, e *env, args []string) error {
	return errors.New("bench: not implemented yet")
}
