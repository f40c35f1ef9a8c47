package main

import (
	"testing"
	"time"
)

func TestDurationText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{24 * time.Hour, "24h"},
		{90 * 24 * time.Hour, "2160h"},
		{7 * 24 * time.Hour, "168h"},
		{30 * time.Second, "30s"},
		{time.Minute, "1m"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{5 * time.Millisecond, "5ms"},
	}
	for _, tt := range tests {
		if got := durationText(tt.d); got != tt.want {
			t.Errorf("durationText(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := time.ParseDuration(durationText(tt.d)); err != nil || back != tt.d {
			t.Errorf("durationText(%v) = %q does not parse back: %v, %v", tt.d, durationText(tt.d), back, err)
		}
	}
}
