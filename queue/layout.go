package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// The queue's storage layout: one stream holds every job and every record,
// by subject (doc.go says why):
//
//	herd.job.<queue>.<priority>.<id>   a job to run: its record as enqueued
//	herd.rec.<queue>.<priority>.<id>   the job's record once a worker has it
//	herd.dead.<queue>.<id>             empty: the job is dead
//	herd.wait.<queue>.<priority>.<id>  a job waiting for its parents (flow.go)
//	herd.skip.<queue>.<priority>.<id>  a job that will not run: a parent failed
//	herd-flow.<id>, herd-flow.<parent>.<id>  what it waits for (flow.go)
//
// A subject keeps only its last message, so a record written again replaces
// the one before it. The last message on herd.*.*.*.<id> is what the queue
// knows of a job now: a dead mark has one token fewer, so it never matches.
// Counting the marks under herd.dead.<queue>.> counts a queue's dead jobs
// from the stream's index, without reading them.
const (
	streamName    = "HERD"
	jobRoot       = "herd.job"
	recRoot       = "herd.rec"
	deadRoot      = "herd.dead"
	layoutKey     = "herd.layout"    // stream metadata: the layout's version
	retentionKey  = "herd.retention" // stream metadata: how long finished records are kept
	layoutVersion = "4"
)

// deadSubject is where a dead job is marked.
func deadSubject(info *Info) string { return deadRoot + "." + info.Queue + "." + info.ID }

// deadFilter matches the marks of the dead jobs of a named queue, or of
// every queue.
func deadFilter(queue string) string {
	if queue == "" {
		return deadRoot + ".>"
	}
	return deadRoot + "." + queue + ".>"
}

// newDeadMsg is the message that marks a job dead; it expires with the
// job's record.
func (c *Client) newDeadMsg(info *Info) *nats.Msg {
	m := &nats.Msg{Subject: deadSubject(info), Header: nats.Header{}}
	m.Header.Set("Nats-TTL", strconv.FormatInt(int64(c.retention/time.Second), 10))
	return m
}

// jobSubject is where a job waits to be run.
func jobSubject(info *Info) string {
	return jobRoot + "." + info.Queue + "." + info.Priority.String() + "." + info.ID
}

// recSubject is where a job's record is kept once a worker has it.
func recSubject(info *Info) string {
	return recRoot + "." + info.Queue + "." + info.Priority.String() + "." + info.ID
}

// idSubject matches every subject of the job with the given id: queue and
// priority names have no dots, so the id is all that follows the fourth.
func idSubject(id string) string { return "herd.*.*.*." + id }

// queueFilter matches the jobs waiting in a named queue, or in every queue.
func queueFilter(queue string) string {
	if queue == "" {
		return jobRoot + ".>"
	}
	return jobRoot + "." + queue + ".>"
}

// idOf returns the id in a job's or a record's subject.
func idOf(subject string) string { return afterDots(subject, 4) }

// deadIDOf returns the id in a dead mark's subject.
func deadIDOf(subject string) string { return afterDots(subject, 3) }

// afterDots returns what follows the n-th dot of subject, or "".
func afterDots(subject string, n int) string {
	for range n {
		i := strings.IndexByte(subject, '.')
		if i < 0 {
			return ""
		}
		subject = subject[i+1:]
	}
	return subject
}

// storedMsg is a message read back from the stream.
type storedMsg struct {
	subject string
	seq     uint64
	data    []byte
}

// readIdle bounds a read whose ctx has no deadline.
const readIdle = 5 * time.Second

// readTimeout bounds a read whose ctx has no deadline to readIdle.
func readTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, readIdle)
}

// directGet asks the stream for up to max stored messages, reading from
// whichever server holds a copy (JetStream's direct get): req is a JSON
// request as JetStream's API takes it. It returns the messages in order;
// none is not an error.
func (c *Client) directGet(ctx context.Context, req any, max int) ([]storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	answers, done := c.gets.open(max + 1)
	defer done()
	if err := c.nc.PublishRequest("$JS.API.DIRECT.GET."+streamName, answers.reply, body); err != nil {
		return nil, err
	}
	// Without a deadline of the caller's, the read gives up when the
	// server stays silent for readIdle, not when a batch takes longer: a
	// big one may take a while to come, one message after another.
	var silence *time.Timer
	var silent <-chan time.Time // never ready with a deadline of the caller's
	if _, ok := ctx.Deadline(); !ok {
		silence = time.NewTimer(readIdle)
		defer silence.Stop()
		silent = silence.C
	}
	var msgs []storedMsg
	for {
		var m *nats.Msg
		select {
		case m = <-answers.ch:
			if silence != nil {
				silence.Reset(readIdle)
			}
		case <-silent:
			return nil, fmt.Errorf("read: the server sent nothing for %v: %w", readIdle, context.DeadlineExceeded)
		case <-ctx.Done():
			return nil, fmt.Errorf("read: %w", ctx.Err())
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404":
			return msgs, nil // nothing (more) matches
		case "204":
			return msgs, nil // the end of a batch
		default:
			return nil, fmt.Errorf("read: %s %s", status, m.Header.Get("Description"))
		}
		seq, _ := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		msgs = append(msgs, storedMsg{subject: m.Header.Get("Nats-Subject"), seq: seq, data: m.Data})
		if len(m.Header.Values("Nats-Num-Pending")) == 0 {
			return msgs, nil // a single message, not a batch
		}
	}
}

// readRange returns the stored messages from stream sequence from to
// to, in order. It asks for each sequence on its own, all at once: a read
// of a batch makes the server count what follows it by subject, which
// takes long in a stream of millions, while a read of one sequence takes
// the same time however many there are. Sequences removed are skipped.
func (c *Client) readRange(ctx context.Context, from, to uint64) ([]storedMsg, error) {
	if to < from {
		return nil, nil
	}
	ctx, cancel := readTimeout(ctx)
	defer cancel()
	calls := make([]*getCall, 0, to-from+1)
	defer func() {
		for _, call := range calls {
			call.done()
		}
	}()
	for seq := from; seq <= to; seq++ {
		call, done := c.gets.open(1)
		call.done = done
		calls = append(calls, call)
		if err := c.nc.PublishRequest("$JS.API.DIRECT.GET."+streamName, call.reply, []byte(`{"seq":`+strconv.FormatUint(seq, 10)+`}`)); err != nil {
			return nil, err
		}
	}
	msgs := make([]storedMsg, 0, len(calls))
	for _, call := range calls {
		select {
		case m := <-call.ch:
			switch status := m.Header.Get("Status"); status {
			case "":
				seq, _ := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
				msgs = append(msgs, storedMsg{subject: m.Header.Get("Nats-Subject"), seq: seq, data: m.Data})
			case "404": // removed
			default:
				return nil, fmt.Errorf("read: %s %s", status, m.Header.Get("Description"))
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("read: %w", ctx.Err())
		}
	}
	return msgs, nil
}

// getter hands the answers to the client's direct gets, which may come as
// many messages, to the call that asked, through one subscription.
type getter struct {
	sub    *nats.Subscription
	prefix string
	mu     sync.Mutex
	next   uint64
	calls  map[string]*getCall
}

type getCall struct {
	reply string
	ch    chan *nats.Msg
	done  func() // for readRange
}

func newGetter(nc *nats.Conn) (*getter, error) {
	g := &getter{prefix: nc.NewInbox() + ".", calls: map[string]*getCall{}}
	var err error
	g.sub, err = nc.Subscribe(g.prefix+"*", func(m *nats.Msg) {
		g.mu.Lock()
		call := g.calls[m.Subject]
		g.mu.Unlock()
		if call != nil {
			select {
			case call.ch <- m:
			default: // more than asked for: the call ends on its timeout
			}
		}
	})
	if err != nil {
		return nil, err
	}
	g.sub.SetPendingLimits(-1, -1)
	return g, nil
}

// open starts a call that takes up to max answers; done ends it.
func (g *getter) open(max int) (*getCall, func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next++
	call := &getCall{reply: g.prefix + strconv.FormatUint(g.next, 10), ch: make(chan *nats.Msg, max)}
	g.calls[call.reply] = call
	return call, func() {
		g.mu.Lock()
		delete(g.calls, call.reply)
		g.mu.Unlock()
	}
}

// last returns the last message on subject (which may have wildcards), or
// nil if there is none.
//
// A read answered by a replica of a replicated stream can miss what was
// just written (a follower applies a write a moment after the leader says
// it is stored): a subject found empty there is read again from the
// stream's leader, so that a job is found as soon as its enqueue returns.
func (c *Client) last(ctx context.Context, subject string) (*storedMsg, error) {
	msgs, err := c.directGet(ctx, map[string]any{"last_by_subj": subject}, 1)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		if c.stream.CachedInfo().Config.Replicas <= 1 {
			return nil, nil
		}
		return c.leaderLast(ctx, subject)
	}
	return &msgs[0], nil
}

// leaderLast reads the last message on subject from the stream's leader,
// which answers the stream's API (any replica answers a direct get).
func (c *Client) leaderLast(ctx context.Context, subject string) (*storedMsg, error) {
	body, err := json.Marshal(map[string]string{"last_by_subj": subject})
	if err != nil {
		return nil, err
	}
	ctx, cancel := readTimeout(ctx)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+streamName, body)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var resp struct {
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
			Data    []byte `json:"data"` // base64 in JSON
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	switch err := json.Unmarshal(m.Data, &resp); {
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	case resp.Error != nil && resp.Error.Code == 404:
		return nil, nil
	case resp.Error != nil:
		return nil, fmt.Errorf("read: %d %s", resp.Error.Code, resp.Error.Description)
	case resp.Message == nil:
		return nil, errors.New("read: an empty answer")
	}
	return &storedMsg{subject: resp.Message.Subject, seq: resp.Message.Seq, data: resp.Message.Data}, nil
}

// lasts returns the last message on each subject that matches one of
// subjects, at most max of them: as many as subjects, unless a subject
// with wildcards matches several.
func (c *Client) lasts(ctx context.Context, subjects []string, max int) ([]storedMsg, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	return c.directGet(ctx, map[string]any{"multi_last": subjects, "batch": max}, max)
}

// current returns what the queue knows now of jobs read from their
// messages: infos[i] as the message at stream sequence seqs[i] carried it,
// or the job's record if one newer than the message exists (an older one
// is from before a retry by hand). It reads the records in one request.
func (c *Client) current(ctx context.Context, infos []*Info, seqs []uint64) ([]*Info, error) {
	subjects := make([]string, len(infos))
	for i, info := range infos {
		subjects[i] = recSubject(info)
	}
	recs, err := c.lasts(ctx, subjects, len(subjects))
	if err != nil {
		return nil, err
	}
	bySubject := make(map[string]storedMsg, len(recs))
	for _, r := range recs {
		bySubject[r.subject] = r
	}
	cur := make([]*Info, len(infos))
	for i, info := range infos {
		cur[i] = info
		if r, ok := bySubject[subjects[i]]; ok && r.seq > seqs[i] {
			rec := new(Info)
			if json.Unmarshal(r.data, rec) == nil {
				cur[i] = rec
			}
		}
	}
	return cur, nil
}

// count returns how many messages match subject, from the stream's own
// index: no message is read but the first.
func (c *Client) count(ctx context.Context, subject string) (uint64, error) {
	body, _ := json.Marshal(map[string]any{"seq": 1, "next_by_subj": subject, "batch": 1})
	m, err := c.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+streamName, body)
	if err != nil {
		return 0, err
	}
	switch m.Header.Get("Status") {
	case "404":
		return 0, nil
	case "":
		n, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
		return n + 1, err
	}
	return 0, fmt.Errorf("count %s: %s %s", subject, m.Header.Get("Status"), m.Header.Get("Description"))
}

// newRecordMsg is the message that stores info as the job's record (final
// ones expire after the queue's retention).
func (c *Client) newRecordMsg(info *Info) (*nats.Msg, error) {
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: recSubject(info), Data: data, Header: nats.Header{}}
	if info.State.Finished() {
		m.Header.Set("Nats-TTL", strconv.FormatInt(int64(c.retention/time.Second), 10))
	}
	return m, nil
}

// newJobMsg is the message that puts a job in its queue. With unique set,
// it is stored only if the queue has no job of that id.
func newJobMsg(info *Info, unique bool) (*nats.Msg, error) {
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: jobSubject(info), Data: data, Header: nats.Header{}}
	if unique {
		expectLast(m, info.ID, 0)
	}
	return m, nil
}

// expectLast makes m's store depend on the last message of the job with
// the given id having sequence seq (0: there is none).
func expectLast(m *nats.Msg, id string, seq uint64) {
	m.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(seq, 10))
	m.Header.Set("Nats-Expected-Last-Subject-Sequence-Subject", idSubject(id))
}
