package web

import (
	"context"
	"fmt"
	"html/template"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/goherd/herd/queue"
)

// A graph is what a page draws of jobs that wait for other jobs: nodes in
// columns, each column waiting for the one on its left.
type graph struct {
	nodes map[string]*graphNode
	edges [][2]string // parent, child
	more  int         // neighbours left out
}

// A graphNode is a node of a graph: a job, or a run.
type graphNode struct {
	id, label, href string
	state           string // a class: the job's state, or a run's summary
	layer           int
	order           int // the order it was found in, within its layer
	focus           bool
}

func newGraph() *graph { return &graph{nodes: map[string]*graphNode{}} }

// add adds a node, unless it is there; it reports whether it was added.
func (g *graph) add(n *graphNode) bool {
	if _, ok := g.nodes[n.id]; ok {
		return false
	}
	n.order = len(g.nodes)
	g.nodes[n.id] = n
	return true
}

// link adds an edge from parent to child, once.
func (g *graph) link(parent, child string) {
	e := [2]string{parent, child}
	if !slices.Contains(g.edges, e) {
		g.edges = append(g.edges, e)
	}
}

// The most nodes a job's graph shows, and the most parents or children of
// one node it follows.
const (
	graphMaxNodes = 40
	graphMaxLinks = 8
)

// jobGraph is the neighbourhood of a job: its parents and children, theirs
// in turn, up to graphMaxNodes. Nil if the job waits for nothing and
// nothing waits for it.
func jobGraph(ctx context.Context, c *queue.Client, info *queue.Info) (*graph, error) {
	g := newGraph()
	g.add(&graphNode{id: info.ID, state: string(info.State), focus: true})
	infos := map[string]*queue.Info{info.ID: info}
	frontier := []string{info.ID}
	for len(frontier) > 0 && len(g.nodes) < graphMaxNodes {
		children, err := c.Children(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var found []string
		follow := func(from string, to []string, layer int, parent bool) {
			for i, id := range to {
				if i == graphMaxLinks || len(g.nodes) >= graphMaxNodes && g.nodes[id] == nil {
					g.more += len(to) - i
					return
				}
				if g.add(&graphNode{id: id, layer: layer}) {
					found = append(found, id)
				}
				if parent {
					g.link(id, from)
				} else {
					g.link(from, id)
				}
			}
		}
		for _, id := range frontier {
			n := g.nodes[id]
			follow(id, infos[id].Parents, n.layer-1, true)
			follow(id, children[id], n.layer+1, false)
		}
		read, err := c.Infos(ctx, found)
		if err != nil {
			return nil, err
		}
		frontier = frontier[:0]
		for _, id := range found {
			if infos[id] = read[id]; infos[id] == nil {
				g.nodes[id].state = "gone"
				continue
			}
			g.nodes[id].state = string(infos[id].State)
			frontier = append(frontier, id)
		}
	}
	if len(g.edges) == 0 {
		return nil, nil
	}
	for id, n := range g.nodes {
		n.href = "/jobs/" + url.PathEscape(id)
		n.label = id
		if info := infos[id]; info != nil {
			n.label = info.Kind + " " + id
		}
	}
	return g, nil
}

// svg draws the graph, left to right: each node a link, coloured by its
// state.
func (g *graph) svg(title string) template.HTML {
	if g == nil {
		return ""
	}
	const w, h, gapX, gapY, pad = 200.0, 28.0, 48.0, 12.0, 6.0
	layers := map[int][]*graphNode{}
	first := 0
	for _, n := range g.nodes {
		layers[n.layer] = append(layers[n.layer], n)
		first = min(first, n.layer)
	}
	rows := 0
	for _, ns := range layers {
		slices.SortFunc(ns, func(a, b *graphNode) int { return a.order - b.order })
		rows = max(rows, len(ns))
	}
	type point struct{ x, y float64 }
	at := map[string]point{}
	cols := 0
	for layer, ns := range layers {
		col := layer - first
		cols = max(cols, col+1)
		for i, n := range ns {
			at[n.id] = point{pad + float64(col)*(w+gapX), pad + float64(i)*(h+gapY)}
		}
	}
	width := 2*pad + float64(cols)*w + float64(cols-1)*gapX
	height := 2*pad + float64(rows)*h + float64(rows-1)*gapY
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="graph" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		width, height, width, height, template.HTMLEscapeString(title))
	for _, e := range g.edges {
		p, c := at[e[0]], at[e[1]]
		x1, y1, x2, y2 := p.x+w, p.y+h/2, c.x, c.y+h/2
		fmt.Fprintf(&b, `<path class="edge" d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f"/>`, x1, y1, x1+gapX/2, y1, x2-gapX/2, y2, x2, y2)
	}
	ids := make([]string, 0, len(g.nodes))
	for id := range g.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		n, p := g.nodes[id], at[id]
		class := "node state-" + n.state
		if n.focus {
			class += " focus"
		}
		label := n.label
		if r := []rune(label); len(r) > 30 {
			label = string(r[:29]) + "…"
		}
		fmt.Fprintf(&b, `<a href="%s" data-id="%s"><g class="%s"><title>%s: %s</title><rect x="%.1f" y="%.1f" width="%.0f" height="%.0f" rx="4"/><text x="%.1f" y="%.1f">%s</text></g></a>`,
			template.HTMLEscapeString(n.href), template.HTMLEscapeString(n.id), template.HTMLEscapeString(class),
			template.HTMLEscapeString(n.label), template.HTMLEscapeString(n.state),
			p.x, p.y, w, h, p.x+8, p.y+h/2+4, template.HTMLEscapeString(label))
	}
	b.WriteString(`</svg>`)
	if g.more > 0 {
		fmt.Fprintf(&b, `<p class="muted">%d more parents and children are not drawn.</p>`, g.more)
	}
	return template.HTML(b.String())
}

// runGraph is a run of herd run --queue with the runs it waits for
// (--after, --after-each) and those that wait for it, found from its first
// job: every job of a run waits the same way. Nil if there are none.
func (rs *runs) runGraph(ctx context.Context, row *RunRow) (*graph, error) {
	if row.Jobs == 0 {
		return nil, nil
	}
	first, barrier := row.ID+".1", row.ID+"-after"
	infos, err := rs.c.Infos(ctx, []string{first, barrier})
	if err != nil {
		return nil, err
	}
	children, err := rs.c.Children(ctx, []string{first})
	if err != nil {
		return nil, err
	}
	before, after := map[string]bool{}, map[string]bool{}
	for _, id := range []string{first, barrier} {
		if info := infos[id]; info != nil {
			for _, p := range info.Parents {
				if p != barrier {
					before[runOf(p)] = true
				}
			}
		}
	}
	for _, ch := range children[first] {
		after[runOf(ch)] = true
	}
	if len(before)+len(after) == 0 {
		return nil, nil
	}
	g := newGraph()
	node := func(id string, layer int) *graphNode {
		n := &graphNode{id: id, layer: layer, href: "/runs/" + url.PathEscape(id), label: "run " + id, state: "gone"}
		r := row
		if id != row.ID {
			if r, err = rs.row(ctx, id); err != nil {
				return n
			}
		}
		n.label = fmt.Sprintf("%s %d/%d", id, r.Done, r.Jobs)
		switch {
		case r.Failed > 0:
			n.state = "failed"
		case r.Finished():
			n.state = "succeeded"
		case r.Done > 0:
			n.state = "running"
		default:
			n.state = "pending"
		}
		return n
	}
	g.add(node(row.ID, 0))
	g.nodes[row.ID].focus = true
	for _, id := range slices.Sorted(maps.Keys(before)) {
		g.add(node(id, -1))
		g.link(id, row.ID)
	}
	for _, id := range slices.Sorted(maps.Keys(after)) {
		g.add(node(id, 1))
		g.link(row.ID, id)
	}
	return g, nil
}

// runOf returns the run of a job of herd run --queue: RUN of RUN.N, and of
// RUN-after, the job that RUN's jobs wait with for the runs of --after.
func runOf(job string) string {
	if run, ok := strings.CutSuffix(job, "-after"); ok {
		return run
	}
	run, _, _ := strings.Cut(job, ".")
	return run
}
