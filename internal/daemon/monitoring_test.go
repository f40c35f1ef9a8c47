package daemon_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// metricName finds the metric names in a PromQL expression: ours, and Go's
// and the process's from client_golang.
var metricName = regexp.MustCompile(`\b(?:cancelnotify|go|process|promhttp)_[a-z0-9_]+\b`)

// The Grafana dashboard and the Prometheus rules in docs/monitoring query
// only metrics a live daemon exports on /metrics.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	dashboard := dashboardExprs(t, "../../docs/monitoring/cancelnotify.dashboard.json")
	rules := ruleExprs(t, "../../docs/monitoring/cancelnotify.rules.yml")
	if len(dashboard) < 15 || len(rules) < 4 {
		t.Fatalf("found %d dashboard and %d rule expressions; the files were not read as expected", len(dashboard), len(rules))
	}

	// A daemon that has done a bit of everything, so that every family has
	// samples: sends (one failing), a rejected row, webhooks, polls.
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"02"}
	e := newEnv(t, sbcfg)
	cfg := withWebhook(e.config())
	cfg.AdminAddr = "127.0.0.1:0"
	d := e.start(cfg)
	e.registerWebhook(d)
	ids := []string{"order-0", "order-1", "order-2"}
	for i, id := range ids {
		e.insert(id, orderPayload(i))
	}
	e.insert("order-bad", payload{"phone": "1"})
	e.waitAsPlanned(30*time.Second, ids)
	code, body := get(t, d.AdminURL()+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exported[line[:strings.IndexAny(line, "{ ")]] = true
	}

	for _, src := range []struct {
		file  string
		exprs []string
	}{{"cancelnotify.dashboard.json", dashboard}, {"cancelnotify.rules.yml", rules}} {
		for _, expr := range src.exprs {
			names := metricName.FindAllString(expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: %q queries no metric of the daemon", src.file, expr)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("%s queries %s, which the daemon does not export (README.md, \"Metrics\")", src.file, name)
				}
			}
		}
	}
}

// dashboardExprs returns every PromQL expression of a Grafana dashboard.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not a dashboard's JSON: %v", path, err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// ruleExprs returns every expression of a Prometheus rules file.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s is not a rules file: %v", path, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}
