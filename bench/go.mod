module github.com/goherd/herd/bench

go 1.26.0

replace github.com/goherd/herd => ../

tool golang.org/x/perf/cmd/benchstat

require (
	github.com/alitto/pond/v2 v2.7.1
	github.com/goherd/herd v0.0.0-00010101000000-000000000000
	github.com/panjf2000/ants/v2 v2.12.1
	github.com/sourcegraph/conc v0.3.0
	golang.org/x/sync v0.23.0
)

require (
	github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794 // indirect
	go.uber.org/atomic v1.7.0 // indirect
	go.uber.org/multierr v1.9.0 // indirect
	golang.org/x/perf v0.0.0-20260908200009-22c9c6c9d4da // indirect
)
