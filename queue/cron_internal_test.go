package queue

import (
	"testing"
	"time"
	_ "time/tzdata" // CRON_TZ zones, wherever the tests run
)

func TestParseSpecAndLatestTick(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	now := at("2026-11-29T08:34:56Z")
	long := at("2020-01-01T00:00:00Z")
	for _, tc := range []struct {
		spec         string
		next, latest string
	}{
		{"*/5 * * * *", "2026-11-29T08:35:00Z", "2026-11-29T08:30:00Z"},
		{"30 */5 * * * *", "2026-11-29T08:35:30Z", "2026-11-29T08:30:30Z"}, // with seconds
		{"0 9 * * *", "2026-11-29T09:00:00Z", "2026-11-28T09:00:00Z"},
		{"@daily", "2026-11-30T00:00:00Z", "2026-11-29T00:00:00Z"},
		{"@every 90s", "2026-11-29T08:36:00Z", "2026-11-29T08:34:30Z"}, // multiples of 90s since the epoch
		{"CRON_TZ=Europe/Paris 0 9 * * *", "2026-11-30T08:00:00Z", "2026-11-29T08:00:00Z"},
		{"0 0 1 1 *", "2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}, // yearly: the widest look back
	} {
		tk, err := parseSpec(tc.spec)
		if err != nil {
			t.Fatalf("parseSpec(%q): %v", tc.spec, err)
		}
		if got := tk.Next(now); !got.Equal(at(tc.next)) {
			t.Errorf("%q: next tick after %v = %v, want %s", tc.spec, now, got.UTC(), tc.next)
		}
		if got := latestTick(tk, long, now); !got.Equal(at(tc.latest)) {
			t.Errorf("%q: latest tick at %v = %v, want %s", tc.spec, now, got.UTC(), tc.latest)
		}
		if got := latestTick(tk, now.Add(-time.Second), now); !got.IsZero() && got.Before(now.Add(-time.Second)) {
			t.Errorf("%q: latest tick since a second ago = %v", tc.spec, got)
		}
	}
	if got := latestTick(every(time.Minute), now, now); !got.IsZero() {
		t.Errorf("a schedule added after its latest tick has none to catch up, got %v", got)
	}
	for _, bad := range []string{"", "bogus", "* * *", "@every 0s", "@every 500ms", "@every x", "CRON_TZ=No/Where 0 9 * * *"} {
		if _, err := parseSpec(bad); err == nil {
			t.Errorf("parseSpec(%q) = nil error", bad)
		}
	}
}
