package bench

import (
	"context"
	"fmt"
	"time"
)

// OMSCostResult is what the outbox trigger costs the OMS: its single-row
// commit rate into the real outbox against a copy without the trigger.
type OMSCostResult struct {
	Stopped *OMSRates `json:"daemon_stopped,omitempty"`
	Working *OMSRates `json:"daemon_working,omitempty"`
}

// OMSRates are the commit rates of one setting, over alternating slices
// (outbox, copy, outbox, copy, …) so that both share the machine's noise.
type OMSRates struct {
	Connections  int     `json:"connections"`
	Rounds       int     `json:"rounds"`
	SliceSeconds float64 `json:"slice_seconds"`
	OutboxRows   int     `json:"outbox_rows"`
	CopyRows     int     `json:"copy_rows"`
	OutboxPerSec float64 `json:"outbox_commits_per_s"`
	CopyPerSec   float64 `json:"copy_commits_per_s"`
	// Ratio is OutboxPerSec / CopyPerSec: 1 means the trigger costs the
	// OMS nothing.
	Ratio float64 `json:"ratio"`
}

// omsCopy is the trigger-less copy of the outbox (LIKE copies no triggers).
const omsCopy = "bench_outbox_copy"

// omsCost commits single rows from Writers connections, alternating between
// the outbox and its trigger-less copy. It returns the rates and how many
// outbox rows it committed (the daemon, if running, sends them).
func (r *runner) omsCost(ctx context.Context, what string) (*OMSRates, error) {
	c := r.cfg
	if _, err := r.admin.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+r.table(omsCopy)+" (LIKE "+r.table("outbox")+" INCLUDING ALL)"); err != nil {
		return nil, fmt.Errorf("create the OMS cost's copy of the outbox: %w", err)
	}
	conns, err := connectN(ctx, c.DatabaseURL, appPrefix+"-oms", c.Writers)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	r.logf("OMS cost, %s: single-row INSERT…COMMIT from %d connections, %d rounds of %s into the outbox then %s into a copy without its trigger",
		what, c.Writers, c.OMSRounds, c.OMSSlice, c.OMSSlice)
	res := &OMSRates{Connections: c.Writers, Rounds: c.OMSRounds, SliceSeconds: c.OMSSlice.Seconds()}
	var outboxTime, copyTime time.Duration
	for round := range c.OMSRounds {
		for _, target := range []string{"outbox", omsCopy} {
			start := time.Now()
			p := phaseOMS.from(r.omsRows + res.CopyRows)
			w, err := writeAsFastAsPossible(ctx, conns, r.table(target), p, phaseOMS.limit-r.omsRows-res.CopyRows, start.Add(c.OMSSlice))
			elapsed := time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("OMS cost, %s, round %d, %s: %w", what, round+1, target, err)
			}
			if target == "outbox" {
				res.OutboxRows += w.Rows
				r.omsRows += w.Rows
				outboxTime += elapsed
			} else {
				res.CopyRows += w.Rows
				copyTime += elapsed
			}
		}
	}
	// Copy rows keep their numbers apart from outbox rows for the next run.
	r.omsRows += res.CopyRows
	res.OutboxPerSec = rate(res.OutboxRows, outboxTime)
	res.CopyPerSec = rate(res.CopyRows, copyTime)
	if res.CopyPerSec > 0 {
		res.Ratio = round(res.OutboxPerSec/res.CopyPerSec, 2)
	}
	if _, err := r.admin.Exec(ctx, "TRUNCATE "+r.table(omsCopy)); err != nil {
		return nil, fmt.Errorf("empty the OMS cost's copy: %w", err)
	}
	r.logf("OMS cost, %s: outbox %s rows/s, copy %s rows/s, ratio %s", what, num(res.OutboxPerSec), num(res.CopyPerSec), num(res.Ratio))
	return res, nil
}
