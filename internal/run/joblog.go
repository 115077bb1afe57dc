package run

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/goherd/herd/internal/command"
)

// The job log is GNU parallel's: a header, then a row of nine tab-separated
// columns for every finished job, written as the job finishes, in one write,
// so that a row is either there whole or not at all even if herd is killed.
const joblogHeader = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"

// A LogRow is one row of a job log, as far as herd reads it.
type LogRow struct {
	Seq     int
	Exit    int
	Signal  int
	Command string
}

// Failed reports whether the row's job failed.
func (r LogRow) Failed() bool { return r.Exit != 0 || r.Signal != 0 }

// joblog appends rows to a job log file.
type joblog struct {
	mu sync.Mutex
	f  *os.File
}

// openJoblog opens path for writing rows: truncated unless keep is set, and
// with a header if it is empty.
func openJoblog(path string, keep bool) (*joblog, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !keep {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--joblog: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() == 0 {
		_, err = f.WriteString(joblogHeader)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--joblog: %w", err)
	}
	return &joblog{f: f}, nil
}

// write appends the row of a finished job.
// A job that ran here has ":" for its host, as in GNU parallel.
func (l *joblog) write(seq int, host string, res command.Result, sent, received int64, line string) error {
	row := JoblogRow(seq, host, res, sent, received, line)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.f.WriteString(row)
	return err
}

// JoblogHeader is the first line of a job log.
const JoblogHeader = joblogHeader

// JoblogRow is the job log's row of a finished job, newline included.
func JoblogRow(seq int, host string, res command.Result, sent, received int64, line string) string {
	if host == "" {
		host = ":"
	}
	exit := res.Exit
	if res.Signal != 0 && !res.Killed {
		// As GNU parallel writes it: a job that died of a signal has
		// Exitval 0 and the signal in its column; one that herd killed
		// (a time limit, --halt now), Exitval -1.
		exit = 0
	}
	return fmt.Sprintf("%d\t%s\t%.3f\t%10.3f\t%d\t%d\t%d\t%d\t%s\n",
		seq, logCommand(host), float64(res.Start.UnixMilli())/1000, res.Duration.Seconds(), sent, received,
		exit, res.Signal, logCommand(line))
}

func (l *joblog) Close() error { return l.f.Close() }

// logCommand is a command line as the job log holds it: on one line, with
// no tab to break the columns.
func logCommand(line string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(line)
}

// ReadJoblog reads the rows of an existing job log by job number, the last
// row of each job winning, and the job numbers in the order they first
// appear. A missing file has no rows.
func ReadJoblog(path string) (map[int]LogRow, []int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--joblog: %w", err)
	}
	defer f.Close()
	rows := make(map[int]LogRow)
	var order []int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<30)
	sc.Split(splitLines)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 && line+"\n" == joblogHeader {
			continue
		}
		cols := strings.SplitN(line, "\t", 9)
		bad := func() error {
			return fmt.Errorf("--joblog %s: line %d is not a job log row (want 9 tab-separated columns: %s)", path, n, strings.TrimSpace(strings.ReplaceAll(joblogHeader, "\t", " ")))
		}
		if len(cols) != 9 {
			return nil, nil, bad()
		}
		var r LogRow
		var errs [3]error
		r.Seq, errs[0] = strconv.Atoi(cols[0])
		r.Exit, errs[1] = strconv.Atoi(cols[6])
		r.Signal, errs[2] = strconv.Atoi(cols[7])
		if errors.Join(errs[:]...) != nil || r.Seq < 1 {
			return nil, nil, bad()
		}
		r.Command = cols[8]
		if _, seen := rows[r.Seq]; !seen {
			order = append(order, r.Seq)
		}
		rows[r.Seq] = r
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("--joblog %s: %w", path, err)
	}
	return rows, order, nil
}

// matches reports whether a logged command is the one the template makes
// now. A job slot ({%}) may differ between runs, so it matches any number.
func matches(logged, now, marker string) bool {
	logged, now = logCommand(logged), logCommand(now)
	// herd quoted a quote as '\'' before it quoted as GNU parallel does.
	logged = strings.ReplaceAll(logged, `'\''`, `'"'"'`)
	if marker == "" || !strings.Contains(now, marker) {
		return logged == now
	}
	parts := strings.Split(now, marker)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile("^" + strings.Join(parts, "[0-9]+") + "$")
	return err == nil && re.MatchString(logged)
}

// splitLines splits rows at newlines, keeping a carriage return that ends
// a command (bufio.ScanLines drops it, and the command would then differ
// from the one run).
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
