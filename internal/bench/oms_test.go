package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cancelnotify/cancelnotify/onemsg/sandbox"
)

func TestPhasesNeverShareANumber(t *testing.T) {
	phases := []phase{phaseWarmUp, phasePaced, phaseBurst, phaseOMS, phaseSurge, phaseAfter}
	for i, p := range phases {
		last := p.number(p.limit - 1)
		if n := len(p.orderNumber(p.limit - 1)); n != 8 {
			t.Errorf("%s: last order number %d has %d digits, want 8", p.name, last, n)
		}
		if i+1 < len(phases) && last >= phases[i+1].number(0) {
			t.Errorf("%s's last number %d reaches %s's first", p.name, last, phases[i+1].name)
		}
	}
}

func TestPhaseIndexInvertsOrderNumber(t *testing.T) {
	for _, i := range []int{0, 1, 4799, phasePaced.limit - 1} {
		if got, ok := phasePaced.index(phasePaced.orderNumber(i)); !ok || got != i {
			t.Errorf("index(orderNumber(%d)) = %d, %v", i, got, ok)
		}
	}
	for _, order := range []string{phaseBurst.orderNumber(0), phaseWarmUp.orderNumber(3), "abc", ""} {
		if _, ok := phasePaced.index(order); ok {
			t.Errorf("paced claims order %q", order)
		}
	}
}

func TestPayloadIsTheReadmeRowMadeUnique(t *testing.T) {
	var p map[string]string
	if err := json.Unmarshal([]byte(phaseBurst.payload(7)), &p); err != nil {
		t.Fatal(err)
	}
	if p["phone"] != "+49 151 11000007" || p["order_number"] != "11000007" || p["customer_name"] == "" ||
		p["product_name"] == "" || p["next_step"] == "" {
		t.Errorf("payload = %v", p)
	}
	if phaseBurst.eventID(7) != "bench-burst-7" || !strings.HasPrefix(phaseBurst.eventID(7), strings.TrimSuffix(phaseBurst.eventPattern(), "%")) {
		t.Errorf("event id %q does not match pattern %q", phaseBurst.eventID(7), phaseBurst.eventPattern())
	}
}

func TestWithAppName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/postgres?application_name=x"},
		{"postgres://u:p@h/db?sslmode=disable&application_name=old", "postgres://u:p@h/db?application_name=x&sslmode=disable"},
		{"host=/tmp dbname=oms", "host=/tmp dbname=oms application_name=x"},
	}
	for _, tt := range tests {
		if got := withAppName(tt.in, "x"); got != tt.want {
			t.Errorf("withAppName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestArrivalsTakeTheFirstRequestOfEachRow(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	body := func(order string) []byte {
		return []byte(`{"phone":"4915110100000","template":"order_cancelled","params":[{"type":"body","parameters":[` +
			`{"type":"text","text":"Alexey"},{"type":"text","text":"` + order + `"},{"type":"text","text":"x"},{"type":"text","text":"y"}]}]}`)
	}
	reqs := []sandbox.Request{
		{Body: body(phasePaced.orderNumber(0)), At: t0.Add(5 * time.Millisecond)},
		{Body: body(phasePaced.orderNumber(0)), At: t0.Add(time.Second)}, // a retry
		{Body: body(phasePaced.orderNumber(1)), At: t0.Add(9 * time.Millisecond)},
		{Body: body(phaseBurst.orderNumber(0)), At: t0}, // another phase
		{Body: []byte(`not json`), At: t0},
	}
	got := arrivals(reqs, phasePaced)
	if len(got) != 2 || !got["bench-paced-0"].Equal(t0.Add(5*time.Millisecond)) || !got["bench-paced-1"].Equal(t0.Add(9*time.Millisecond)) {
		t.Errorf("arrivals = %v", got)
	}
}

func TestProcKB(t *testing.T) {
	status := "Name:\tcancelnotify\nVmPeak:\t 1234 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40000 kB\n"
	if got := procKB(status, "VmHWM"); got != 81920 {
		t.Errorf("VmHWM = %d", got)
	}
	if got := procKB(status, "VmSwap"); got != 0 {
		t.Errorf("absent key = %d", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Defaults()
	c.DatabaseURL, c.Binary = "postgres://localhost/db", "/bin/cancelnotify"
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.Schema = "cancelnotify"
	c.PacedRate = 0
	c.DaemonEnv = []string{"NOVALUE"}
	err := c.Validate()
	for _, want := range []string{`must contain "bench"`, "paced 0/s", `"NOVALUE" is not KEY=VALUE`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}

func TestRedactEnv(t *testing.T) {
	got := redactEnv([]string{"CANCELNOTIFY_SEND_WORKERS=50", "DATABASE_URL=postgres://u:pw@h/db", "ONEMSG_TOKEN=abc", "CANCELNOTIFY_WEBHOOK_SECRET=s"})
	want := []string{"CANCELNOTIFY_SEND_WORKERS=50", "DATABASE_URL=(hidden)", "ONEMSG_TOKEN=(hidden)", "CANCELNOTIFY_WEBHOOK_SECRET=(hidden)"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("redactEnv = %v, want %v", got, want)
	}
}
