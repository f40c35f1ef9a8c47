package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cancelnotify/cancelnotify/internal/channels"
	"github.com/cancelnotify/cancelnotify/internal/preflight"
	"github.com/cancelnotify/cancelnotify/onemsg"
	cnsql "github.com/cancelnotify/cancelnotify/sql"
)

// cmdCheck is the preflight: what run needs and cannot fix itself.
func cmdCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "check")
	s := newSettings(fs, e.getenv)
	db := addDBOptions(s)
	om := addOneMsgOptions(s)
	secret := s.secret("CANCELNOTIFY_WEBHOOK_SECRET", "webhook-secret", "as for run: when set, check that 1MSG pushes to our webhook")
	asJSON := s.addBool("", "json", false, "print the findings as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	url, schema := db.values(s)
	omv := om.values(s)
	jsonOut := s.boolean(asJSON)
	webhookSecret, _ := s.secretValue(secret, "webhook-secret")
	if err := s.err(); err != nil {
		return err
	}
	pool, err := cnsql.Open(ctx, url, schema, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The database once, then each channel: its findings are named
	// "<channel>/<check>" when there are several.
	type target struct {
		name                          string
		client                        onemsg.Config
		template, namespace, language string
	}
	targets := []target{{channels.Default, omv.client, omv.template, omv.namespace, omv.language}}
	for _, c := range omv.more {
		targets = append(targets, target{c.Name, c.OneMsg, c.Template, c.Namespace, c.Language})
	}
	var r preflight.Report
	for i, tg := range targets {
		api, err := onemsg.NewClient(tg.client)
		if err != nil {
			return fmt.Errorf("channel %s: %w", tg.name, err)
		}
		pc := preflight.Config{API: api, Template: tg.template, Namespace: tg.namespace, Language: tg.language, WebhookSecret: webhookSecret}
		if i == 0 {
			pc.Pool, pc.Schema = pool, schema
			for _, t := range targets {
				pc.Channels = append(pc.Channels, t.name)
			}
		}
		cr := preflight.Run(ctx, pc)
		for _, f := range cr.Findings {
			if len(targets) > 1 && f.Name != "database" && f.Name != "health" { // those two name their channels themselves
				f.Name = tg.name + "/" + f.Name
			}
			r.Findings = append(r.Findings, f)
		}
		r.TemplateMissing = r.TemplateMissing || cr.TemplateMissing
	}
	if jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		for _, f := range r.Findings {
			fmt.Fprintf(e.stdout, "%-4s  %-9s %s\n", strings.ToUpper(string(f.Level)), f.Name, printable(f.Detail))
		}
	}
	if r.Failed() {
		return errors.New("preflight failed: fix the FAIL lines above before running the daemon")
	}
	if !jsonOut {
		fmt.Fprintln(e.stdout, "preflight passed: cancelnotify run can start")
	}
	return nil
}
