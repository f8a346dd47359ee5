package store

import (
	"fmt"
	"slices"
	"testing"
)

// BenchmarkTags measures what authenticating the records costs: compare-and-set transitions
// (each reads a request, checks its tag, writes it and its new tag) with tags and without, in
// the same run, alternating, on the same disk, on the run's backend (bbolt, then etcd: see
// backend_test.go). With fsync the disk dominates; without it (nosync, bbolt only) the code's
// own cost shows. Each figure is the median of three. Goal: ratio (untagged rate / tagged
// rate) <= 1.1.
//
//	go test ./store -run '^$' -bench Tags -benchtime 2000x
func BenchmarkTags(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, callers := range []int{1, 50} {
			name := fmt.Sprintf("fsync=%v/callers=%d", sync, callers)
			b.Run(name, func(b *testing.B) {
				var on, off []float64
				for range 3 {
					on = append(on, tagRate(b, callers, false, !sync))
					off = append(off, tagRate(b, callers, true, !sync))
				}
				slices.Sort(on)
				slices.Sort(off)
				b.ReportMetric(on[1], "tagged-transitions/s")
				b.ReportMetric(off[1], "untagged-transitions/s")
				b.ReportMetric(off[1]/on[1], "ratio")
			})
		}
	}
}

func tagRate(b *testing.B, callers int, untagged, nosync bool) float64 {
	return rateOn(b, func(b *testing.B) (*Store, error) {
		s, err := openOpts(b.TempDir(), Options{NoSync: nosync})
		if err == nil {
			s.untagged = untagged
		}
		return s, err
	}, callers)
}
