package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cancelnotify/cancelnotify/internal/childproc"
	"github.com/cancelnotify/cancelnotify/internal/sendrate"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// SharedConfig is the shared-rate harness (`cancelnotify bench
// --shared-rate`): several daemon processes on one schema and one channel
// rate, measured at the sandbox's request log.
type SharedConfig struct {
	DatabaseURL string
	Schema      string  // dropped and recreated; must contain "bench"
	Binary      string  // cancelnotify, run as each daemon
	Daemons     int     // default 3
	Rate        float64 // the channel's rate, all daemons together; default 20
	Messages    int     // per phase; default 300
	Out         io.Writer
}

// sandbox channels of the harness: the default one and brand-b.
const (
	sharedBrandB      = "ODIBENCHB"
	sharedBrandBToken = "bench-brand-b-token"
)

// RunShared runs three phases: a backlog of Messages drained by all
// daemons (ceiling and budget), the same with one daemon SIGKILLed midway
// (the others take up its share), and Messages split over two channels
// (each through its own channel and token, exactly once). It prints the
// figures and returns an error when a target is missed.
func RunShared(ctx context.Context, c SharedConfig) error {
	if c.Daemons <= 0 {
		c.Daemons = 3
	}
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.Messages <= 0 {
		c.Messages = 300
	}
	if !strings.Contains(c.Schema, "bench") {
		return fmt.Errorf("schema %q: its name must contain \"bench\" (it is dropped)", c.Schema)
	}
	out := c.Out
	dir, err := os.MkdirTemp("", "cancelnotify-shared-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	conn, err := pgx.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{c.Schema}.Sanitize()+" CASCADE"); err != nil {
		return err
	}
	pool, err := cnsql.Open(ctx, c.DatabaseURL, c.Schema, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := cnsql.Migrate(ctx, pool, c.Schema, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+pgx.Identifier{c.Schema}.Sanitize()+" CASCADE") //nolint:errcheck

	// The sandbox, in this process: two channels, statuses fast.
	sbcfg := sandbox.DefaultConfig()
	sbcfg.DeliveredAfter, sbcfg.ReadAfter = 100*time.Millisecond, 200*time.Millisecond
	tpl := sandbox.DefaultTemplates()
	tpl[0].Name = "brand_b_cancelled"
	sbcfg.Channels = []sandbox.ChannelConfig{{Channel: sharedBrandB, Token: sharedBrandBToken, Templates: tpl}}
	sb := sandbox.New(sbcfg)
	defer sb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck
	defer srv.Close()
	sbB, _ := sb.Channel(sharedBrandB)

	tokB := filepath.Join(dir, "brand-b.token")
	chans := filepath.Join(dir, "channels.yaml")
	if err := os.WriteFile(tokB, []byte(sharedBrandBToken), 0o600); err != nil {
		return err
	}
	rate := strconv.FormatFloat(c.Rate, 'g', -1, 64)
	if err := os.WriteFile(chans, []byte(fmt.Sprintf(`channels:
  - name: brand-b
    channel_id: %s
    token_file: %s
    template: brand_b_cancelled
    namespace: %s
    rate: %s
`, sharedBrandB, tokB, sandbox.DefaultNamespace, rate)), 0o600); err != nil {
		return err
	}
	env := childEnv(map[string]string{
		"DATABASE_URL": c.DatabaseURL, "CANCELNOTIFY_SCHEMA": c.Schema,
		"ONEMSG_API_URL": "http://" + ln.Addr().String(), "ONEMSG_CHANNEL_ID": sandbox.DefaultChannel,
		"ONEMSG_TOKEN": sandbox.DefaultToken, "ONEMSG_TEMPLATE": sandbox.DefaultTemplate, "ONEMSG_NAMESPACE": sandbox.DefaultNamespace,
		"CANCELNOTIFY_CHANNELS_FILE": chans, "CANCELNOTIFY_RATE": rate, "CANCELNOTIFY_ADMIN_ADDR": "",
		"CANCELNOTIFY_DB_MAX_CONNS": "8", "CANCELNOTIFY_TRACK_FIRST_POLL": "1s", "CANCELNOTIFY_LOG_LEVEL": "warn",
	})
	daemons := make([]*childproc.Proc, c.Daemons)
	for i := range daemons {
		d, err := childproc.Start(childproc.Spec{Name: fmt.Sprintf("daemon %d", i), Bin: c.Binary, Args: []string{"run"}, Env: env,
			LogPath: filepath.Join(dir, fmt.Sprintf("daemon-%d.log", i))})
		if err != nil {
			return err
		}
		daemons[i] = d
		defer d.Stop(10 * time.Second) //nolint:errcheck
	}
	// Ready: River has elected a leader among the daemons.
	if err := waitUntil(ctx, 30*time.Second, func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM river_leader").Scan(&n)
		return n > 0, err
	}); err != nil {
		return fmt.Errorf("the daemons did not start: %w; see %s", err, dir)
	}

	burst := sendrate.Burst(c.Rate)
	limit := int(c.Rate*1.25) + burst
	budget := time.Duration(float64(c.Messages) / (0.8 * c.Rate) * float64(time.Second)) // 80 % of the budget used
	fmt.Fprintf(out, "SHARED RATE  %d daemons, one channel at %s/s for all together; burst allowance %d (%.1f s of the rate)\n",
		c.Daemons, rate, burst, sendrate.BurstSeconds)
	failed := false
	check := func(name string, ok bool, got, want string) {
		res := "PASS"
		if !ok {
			res, failed = "MISS", true
		}
		fmt.Fprintf(out, "  %-58s %-12s %-12s %s\n", name, got, want, res)
	}

	// Phase 1: the backlog at once.
	if err := insertBacklog(ctx, pool, "p1", 100000, c.Messages, ""); err != nil {
		return err
	}
	reqs, err := waitRequests(ctx, sb, c.Messages, 2*budget+30*time.Second)
	if err != nil {
		return err
	}
	perSec := perWallSecond(reqs)
	span := reqs[len(reqs)-1].At.Sub(reqs[0].At)
	fmt.Fprintf(out, "  phase 1: %d messages at once; per wall-clock second: %v\n", c.Messages, perSec)
	check("highest wall-clock second", slices.Max(perSec) <= limit, strconv.Itoa(slices.Max(perSec)), fmt.Sprintf("≤ %d", limit))
	check(fmt.Sprintf("%d messages, first → last request", c.Messages), span <= budget, span.Round(10*time.Millisecond).String(), "≤ "+budget.String())

	// Phase 2: the same, one daemon SIGKILLed midway.
	sb.Reset(false)
	if err := insertBacklog(ctx, pool, "p2", 200000, c.Messages, ""); err != nil {
		return err
	}
	if _, err := waitRequests(ctx, sb, c.Messages/3, budget+30*time.Second); err != nil {
		return err
	}
	killedAt := time.Now()
	_, _ = daemons[0].Kill()
	<-daemons[0].Done()
	// The survivors drain what they hold; the killed daemon's jobs wait
	// for River's rescue (queued rows: the rate is taken before the intent).
	quiet := 3 * time.Second
	_ = waitUntil(ctx, 2*budget+30*time.Second, func() (bool, error) {
		r := sb.Requests()
		return len(r) > 0 && time.Since(r[len(r)-1].At) > quiet, nil
	})
	reqs = sb.Requests()
	var after []sandbox.Request
	for _, r := range reqs {
		if r.At.After(killedAt) {
			after = append(after, r)
		}
	}
	perAfter := perWallSecond(after)
	back := -1
	for i, n := range perAfter {
		if float64(n) >= 0.8*c.Rate {
			back = i + 1
			break
		}
	}
	fmt.Fprintf(out, "  phase 2: daemon 0 killed after %d of %d; per second after the kill: %v (%d sent after the kill)\n",
		len(reqs)-len(after), c.Messages, perAfter, len(after))
	check("seconds until the survivors send ≥ 80% of the rate", back > 0 && back <= 3, strconv.Itoa(back), "≤ 3")
	if len(perAfter) > 2 {
		full := perAfter[1 : len(perAfter)-1]
		check("highest second after the kill", slices.Max(perAfter) <= limit, strconv.Itoa(slices.Max(perAfter)), fmt.Sprintf("≤ %d", limit))
		sum := 0
		for _, n := range full {
			sum += n
		}
		mean := float64(sum) / float64(max(len(full), 1))
		check("mean rate of the survivors while they had work", mean >= 0.8*c.Rate, fmt.Sprintf("%.1f/s", mean), fmt.Sprintf("≥ %.0f/s", 0.8*c.Rate))
	}

	// Phase 3: two channels, each message through its own, exactly once.
	sb.Reset(false)
	sbB.Reset(false)
	if err := insertBacklog(ctx, pool, "p3", 300000, c.Messages, "brand-b"); err != nil {
		return err
	}
	if err := waitUntil(ctx, 2*budget+90*time.Second, func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM notification WHERE event_id LIKE 'p3-%' AND wamid IS NOT NULL").Scan(&n)
		return n == c.Messages, err
	}); err != nil {
		return fmt.Errorf("phase 3: %w", err)
	}
	wrong, dup, accepted := 0, 0, 0
	for _, ch := range []struct {
		sb    *sandbox.Server
		id    string
		token string
		odd   bool
	}{{sb, sandbox.DefaultChannel, sandbox.DefaultToken, false}, {sbB, sharedBrandB, sharedBrandBToken, true}} {
		for _, r := range ch.sb.Requests() {
			if r.Path != "/"+ch.id+"/sendTemplate" || r.Header.Get("Authorization") != "Bearer "+ch.token {
				wrong++
			}
		}
		seen := map[string]int{}
		for _, m := range ch.sb.Messages() {
			order, _ := strconv.Atoi(m.Params[1])
			if order < 300000 {
				continue // phase 2's, rescued from the killed daemon
			}
			accepted++
			if (order%2 == 1) != ch.odd {
				wrong++
			}
			seen[m.Params[1]]++
		}
		for _, k := range seen {
			if k != 1 {
				dup++
			}
		}
	}
	fmt.Fprintf(out, "  phase 3: %d messages, every second one with channel brand-b\n", c.Messages)
	check("messages through the wrong channel or token", wrong == 0, strconv.Itoa(wrong), "0")
	check("messages accepted more than once / accepted in all", dup == 0 && accepted == c.Messages,
		fmt.Sprintf("%d / %d", dup, accepted), fmt.Sprintf("0 / %d", c.Messages))
	if failed {
		return fmt.Errorf("shared rate: a target was missed")
	}
	return nil
}

// insertBacklog commits n cancellations in one transaction; with channel
// set, every odd order number names it.
func insertBacklog(ctx context.Context, pool *pgxpool.Pool, prefix string, base, n int, channel string) error {
	ids := make([]string, n)
	payloads := make([]string, n)
	for i := range n {
		order := base + i
		ch := ""
		if channel != "" && order%2 == 1 {
			ch = fmt.Sprintf(`,"channel":%q`, channel)
		}
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		payloads[i] = fmt.Sprintf(`{"phone":"+49 151 %08d","customer_name":"Customer %d","order_number":"%d","product_name":"Espresso machine","next_step":"Refund within 5 business days"%s}`,
			20000000+i, i, order, ch)
	}
	_, err := pool.Exec(ctx, "INSERT INTO outbox (event_id, payload) SELECT * FROM unnest($1::text[], $2::jsonb[])", ids, payloads)
	return err
}

// waitRequests waits until the sandbox's default channel has n sendTemplate
// requests and returns them.
func waitRequests(ctx context.Context, sb *sandbox.Server, n int, timeout time.Duration) ([]sandbox.Request, error) {
	var reqs []sandbox.Request
	err := waitUntil(ctx, timeout, func() (bool, error) {
		reqs = sb.Requests()
		return len(reqs) >= n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d requests: %w", len(reqs), n, err)
	}
	return reqs, nil
}

// perWallSecond counts requests per wall-clock second, from the first
// request's second to the last's.
func perWallSecond(reqs []sandbox.Request) []int {
	if len(reqs) == 0 {
		return []int{0}
	}
	first := reqs[0].At.Truncate(time.Second)
	var out []int
	for _, r := range reqs {
		i := int(r.At.Truncate(time.Second).Sub(first) / time.Second)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
