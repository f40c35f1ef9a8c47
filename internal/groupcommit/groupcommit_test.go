package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cancelnotify/cancelnotify/internal/dbtest"
	"github.com/cancelnotify/cancelnotify/internal/groupcommit"
)

// Concurrent callers share transactions; each gets its own result; a
// failing item fails alone.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE TABLE t (v int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(pool, func(ctx context.Context, tx pgx.Tx, items []int) ([]string, error) {
		for _, v := range items {
			if v < 0 {
				return nil, fmt.Errorf("negative %d", v) // rolls the whole batch back
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO t SELECT unnest($1::int[])", items); err != nil {
			return nil, err
		}
		time.Sleep(5 * time.Millisecond) // a commit takes a while: others queue up
		out := make([]string, len(items))
		for i, v := range items {
			out[i] = fmt.Sprint("ok ", v)
		}
		return out, nil
	}, groupcommit.Options{MaxBatch: 50})

	const n = 400
	run := func(bad func(i int) bool) ([]string, []error) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		res := make([]string, n)
		for i := range n {
			wg.Go(func() {
				v := i
				if bad(i) {
					v = -i
				}
				res[i], errs[i] = w.Do(ctx, v)
			})
		}
		wg.Wait()
		return res, errs
	}

	// All good: few transactions.
	if _, err := pool.Exec(ctx, "TRUNCATE t"); err != nil {
		t.Fatal(err)
	}
	_, errs := run(func(int) bool { return false })
	for i, err := range errs {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	batches, items := w.Stats()
	t.Logf("%d items in %d transactions", items, batches)
	if batches >= n/4 {
		t.Errorf("%d transactions for %d items: not batching", batches, items)
	}

	// Some bad: they fail alone, the rest is written once.
	if _, err := pool.Exec(ctx, "TRUNCATE t"); err != nil {
		t.Fatal(err)
	}
	res, errs := run(func(i int) bool { return i%100 == 7 })
	for i := range n {
		switch {
		case i%100 == 7 && (errs[i] == nil || res[i] != ""):
			t.Errorf("item %d: %q, %v; want its own error", i, res[i], errs[i])
		case i%100 != 7 && (errs[i] != nil || res[i] != fmt.Sprint("ok ", i)):
			t.Errorf("item %d: %q, %v", i, res[i], errs[i])
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&rows); err != nil || rows != n-4 {
		t.Errorf("%d rows written (%v), want %d: every good item exactly once", rows, err, n-4)
	}
}

// A caller whose context ends before its item was taken writes nothing.
func TestWithdraw(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	release := make(chan struct{})
	w := groupcommit.New(pool, func(ctx context.Context, tx pgx.Tx, items []int) ([]int, error) {
		<-release
		return items, nil
	}, groupcommit.Options{InFlight: 1})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := w.Do(ctx, 1); first <- err }()
	time.Sleep(50 * time.Millisecond) // item 1 is in the only transaction
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.Do(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("withdrawn item: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The turn was not lost: a later caller is served.
	if got, err := w.Do(ctx, 3); err != nil || got != 3 {
		t.Errorf("after a withdrawal: %d, %v", got, err)
	}
	if _, items := w.Stats(); items != 2 {
		t.Errorf("%d items written, want 2", items)
	}
}
