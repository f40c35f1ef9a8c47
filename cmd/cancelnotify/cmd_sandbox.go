package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg"
	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func cmdSandbox(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "sandbox")
	s := newSettings(fs, e.getenv)
	addr := s.add("CANCELNOTIFY_SANDBOX_ADDR", "addr", "127.0.0.1:8089", "address to listen on")
	delivered := s.add("", "delivered-after", "1s", "time from acceptance to delivered")
	read := s.add("", "read-after", "3s", "time from acceptance to read")
	failRate := s.add("", "fail-rate", "0", "share of accepted messages that fail (0..1)")
	failSuffix := s.add("", "fail-suffix", "", "comma-separated phone endings whose messages always fail")
	noHistory := s.addBool("", "history-disabled", false, "answer GET /messages like a channel with history off")
	noHooks := s.addBool("", "webhooks-disabled", false, "never push statuses to registered webhooks")
	latency := s.add("", "latency", "0s", "latency added to every sendTemplate (e.g. 50ms, like the internet)")
	ratePS := s.add("", "rate", "0", "enforce Meta's throughput limit (messages/s, 130429 when exceeded); 0 = off")
	pair := s.add("", "pair-interval", "0s", "enforce Meta's per-recipient gap (131056 when violated; Meta: 6s); 0 = off")
	seed := s.add("", "seed", "0", "random seed (0 = time-based)")
	chans := s.add("CANCELNOTIFY_CHANNELS_FILE", "channels-file", "", "serve the file's channels too, each with its token_file's token and its template (as the daemon reads them)")
	lo := addLogOptions(s)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := sandbox.ConfigFromEnv(e.getenv)
	cfg.DeliveredAfter = s.duration(delivered)
	cfg.ReadAfter = s.duration(read)
	cfg.FailRate = s.float(failRate, 0, 1)
	for _, suf := range strings.Split(failSuffix.raw, ",") {
		if suf = strings.TrimSpace(suf); suf != "" {
			cfg.FailSuffixes = append(cfg.FailSuffixes, suf)
		}
	}
	cfg.HistoryDisabled = s.boolean(noHistory)
	cfg.WebhooksDisabled = s.boolean(noHooks)
	cfg.Faults.Latency = s.duration(latency)
	cfg.Faults.RatePerSecond = s.float(ratePS, 0, 1e6)
	cfg.Faults.PairInterval = s.duration(pair)
	cfg.Seed = int64(s.integer(seed, 0, 1<<62))
	def := oneMsgValues{client: onemsg.Config{Channel: cfg.Channel}, language: cfg.Templates[0].Language}
	for _, c := range s.channelsFile(chans, def) {
		tpl := sandbox.DefaultTemplates()
		tpl[0].Name, tpl[0].Namespace, tpl[0].Language = c.Template, c.Namespace, c.Language
		cfg.Channels = append(cfg.Channels, sandbox.ChannelConfig{Channel: c.OneMsg.Channel, Token: c.OneMsg.Token, Templates: tpl})
	}
	logger := lo.logger(s, e.stderr)
	if err := s.err(); err != nil {
		return err
	}
	cfg.Logger = logger

	ln, err := net.Listen("tcp", addr.raw)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another with --addr)", addr.raw, err)
	}
	sb := sandbox.New(cfg)
	defer sb.Close()
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "1MSG sandbox listening on %s\n", base)
	fmt.Fprintf(e.stdout, "  ONEMSG_API_URL=%s ONEMSG_CHANNEL_ID=%s ONEMSG_TOKEN=%s\n", base, cfg.Channel, cfg.Token)
	fmt.Fprintf(e.stdout, "  template %s (namespace %s, language %s); instruments at %s/_sandbox/stats\n",
		cfg.Templates[0].Name, cfg.Templates[0].Namespace, cfg.Templates[0].Language, base)
	for _, c := range cfg.Channels {
		fmt.Fprintf(e.stdout, "  also channel %s (template %s, namespace %s)\n", c.Channel, c.Templates[0].Name, c.Templates[0].Namespace)
	}
	logger.Info("sandbox started", "addr", base, "channel", cfg.Channel, "more_channels", len(cfg.Channels))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
