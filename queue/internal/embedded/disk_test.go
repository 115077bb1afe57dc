package embedded

import "testing"

// The reserve kept on a disk: 2% of it, within 1 MiB and 256 MiB, and no
// more than a quarter of a small disk.
func TestReserve(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{1 << 20, 256 << 10},
		{4 << 20, 1 << 20},
		{100 << 20, 2 << 20},
		{1 << 40, 256 << 20},
	} {
		if got := Reserve(c.size); got != c.want {
			t.Errorf("Reserve(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}
