package daemon_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// chromium returns the browser the test drives: $CHROMIUM, else Debian's
// /usr/bin/chromium. A missing browser fails the test: it never skips.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (%v): install it with `apt-get install -y chromium` (Debian/Ubuntu), or point CHROMIUM at a Chrome binary", path, err)
	}
	return path
}

// artifacts is where screenshots go: $TEST_ARTIFACTS when set, else the
// test's temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium with a phone-sized window whose
// every request carries basic auth for the admin listener. It fails the
// test if a page ever opens a JavaScript dialog (an injected alert()).
func browser(t *testing.T, user, pass string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(412, 915))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	// The first call starts the browser and must not carry a timeout.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	dialogs := make(chan string, 10)
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			select {
			case dialogs <- d.Message:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for msg := range dialogs {
			t.Errorf("the page opened a JavaScript dialog %q: a payload ran as script", msg)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	t.Cleanup(func() { close(dialogs) })
	return &tab{t: t, ctx: ctx, dir: artifacts(t)}
}

// tab runs steps in the browser, each batch within a minute.
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *tab) text(css string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("read %s: %v", css, err)
	}
	return s
}

func (b *tab) eval(js string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return n
}

// screenshot saves the whole page as name.png in the artifacts folder.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// Support staff, in a real browser against a running daemon: search an
// order, read its timeline, retry a failed message and see it sent again.
func TestSupportPageInBrowser(t *testing.T) {
	t.Parallel()
	sbcfg := fastSandbox()
	sbcfg.FailSuffixes = []string{"07"}
	e := newEnv(t, sbcfg)
	cfg := withWebhook(e.config())
	cfg.AdminAddr, cfg.AdminUser, cfg.AdminPassword = "127.0.0.1:0", "support", "support-password-1"
	d := e.start(cfg)
	e.registerWebhook(d)
	admin := d.AdminURL()

	if code, _ := get(t, admin+"/notifications", "", ""); code != 401 {
		t.Errorf("/notifications without basic auth: HTTP %d, want 401", code)
	}
	if code, _ := get(t, admin+"/notifications", "support", "wrong"); code != 401 {
		t.Errorf("/notifications with a wrong password: HTTP %d, want 401", code)
	}

	e.insert("order-10482-cancelled", seedPayload())
	failing := orderPayload(7) // phone ends in 07: the sandbox fails it (131026)
	failing["order_number"] = "20007"
	e.insert("order-20007-cancelled", failing)
	e.waitFor(30*time.Second, "order 10482 read and 20007 failed", func() bool {
		var n int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notification
			WHERE (event_id, status) IN (('order-10482-cancelled', 'read'), ('order-20007-cancelled', 'failed'))`).Scan(&n)
		return err == nil && n == 2
	})
	before := e.notification("order-20007-cancelled")

	b := browser(t, "support", "support-password-1")
	b.do("search order 10482",
		chromedp.Navigate(admin+"/notifications"),
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "10482"),
		chromedp.Submit(chromedp.CSS(`input[name="q"]`)),
		// the value attribute is the server's answer, not what was typed
		chromedp.WaitVisible(chromedp.CSS(`input[name="q"][value="10482"]`)))
	b.screenshot("1-search")
	if got := b.eval(`document.querySelectorAll('td[data-l="Event"] a').length`); got != 1 {
		t.Errorf("the search lists %d notifications, want 1", got)
	}
	b.do("open order 10482", chromedp.Click(chromedp.CSS(`td[data-l="Event"] a`)), chromedp.WaitVisible(chromedp.CSS(`#timeline`)))
	b.screenshot("2-detail")
	if status := b.text(`#status`); status != "read" {
		t.Errorf("status shown %q, want read", status)
	}
	timeline := b.text(`#timeline`)
	for _, want := range []string{"daemon", "api", "webhook", "queued", "sending", "sent", "delivered", "read"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	if message := b.text(`#message`); !strings.Contains(message, `Hello, Alexey! Order #10482 for "Wireless headphones" has been cancelled.`) ||
		!strings.Contains(message, "Order details") {
		t.Errorf("message shown %q; want the template with the texts filled in, and its button", message)
	}

	b.do("retry order 20007",
		chromedp.Navigate(admin+"/notifications?q=20007"),
		chromedp.Click(chromedp.CSS(`td[data-l="Event"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value="retry"]`)))
	b.screenshot("3-failed")
	b.do("press retry", chromedp.Click(chromedp.CSS(`button[value="retry"]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)))
	b.screenshot("4-confirm")
	if n := e.notification("order-20007-cancelled"); n.Status != ledger.StatusFailed {
		t.Errorf("status %s before the confirmation; want still failed", n.Status)
	}
	b.do("confirm", chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`p.ok`)))
	if flash := b.text(`p.ok`); !strings.Contains(flash, "failed → queued") {
		t.Errorf("after retry the page says %q", flash)
	}
	// It goes out again: 1MSG accepts a second message, with a new wamid.
	e.waitFor(30*time.Second, "the retried message accepted by 1MSG", func() bool {
		n := e.notification("order-20007-cancelled")
		return n.Wamid != "" && n.Wamid != before.Wamid
	})
	after := e.notification("order-20007-cancelled")
	sends := 0
	for _, m := range e.sb.Messages() {
		if m.Phone == after.Phone {
			sends++
		}
	}
	if sends != 2 {
		t.Errorf("1MSG has %d messages for the failed order's phone, want 2 (the first and the retry)", sends)
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#timeline`)))
	b.screenshot("5-sent-again")
	timeline = b.text(`#timeline`)
	if !strings.Contains(timeline, "operator") || !strings.Contains(timeline, "support page: support") || !strings.Contains(timeline, after.Wamid) {
		t.Errorf("timeline after retry lacks the operator event or the new wamid %s:\n%s", after.Wamid, timeline)
	}
}

// A payload written to attack the page shows as plain text in the browser:
// no script runs, no markup appears, no direction override reaches it.
func TestSupportPageHostilePayloadInBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastSandbox())
	cfg := e.config()
	cfg.AdminAddr, cfg.AdminUser, cfg.AdminPassword = "127.0.0.1:0", "support", "support-password-1"
	d := e.start(cfg)
	hostile := seedPayload()
	hostile["customer_name"] = `<script>alert("name")</script>` + "\u202eevil\u200b"
	hostile["order_number"] = `<img src=x onerror=alert("order")>`
	hostile["product_name"] = "Headphones\u2066<b>bold</b>"
	e.insert("order-hostile", hostile)
	e.waitFinal(30*time.Second, "order-hostile")

	b := browser(t, "support", "support-password-1")
	b.do("open the hostile notification",
		chromedp.Navigate(d.AdminURL()+"/notifications"),
		chromedp.WaitVisible(chromedp.CSS(`td[data-l="Event"] a`)))
	b.screenshot("1-list")
	b.do("open it", chromedp.Click(chromedp.CSS(`td[data-l="Event"] a`)), chromedp.WaitVisible(chromedp.CSS(`#message`)))
	b.screenshot("2-detail")
	if n := b.eval(`document.querySelectorAll("script, img, b, iframe").length`); n != 0 {
		t.Errorf("the page has %d script, img, b or iframe elements; want none (payload markup must be text)", n)
	}
	message, row := b.text(`#message`), b.text(`dl`)
	// The relay strips bidi controls and zero-width characters from the four
	// texts before sending, so the message as the customer saw it has
	// neither them nor the page's marks for them.
	for _, want := range []string{`<script>alert("name")</script>evil!`, `<img src=x onerror=alert("order")>`, "Headphones<b>bold</b>"} {
		if !strings.Contains(message, want) {
			t.Errorf("message %q lacks %q as text", message, want)
		}
	}
	if !strings.Contains(row, `<script>alert("name")</script>`) {
		t.Errorf("customer name not shown as text: %q", row)
	}
	if strings.ContainsAny(message+row, "\u202e\u200b\u2066") {
		t.Errorf("invisible characters reached the page unmarked")
	}
}
