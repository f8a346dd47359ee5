package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cursorFileOf is export's --cursor-file, as journalctl's: the cursor of the last event an
// earlier export wrote, so that a shipper run every night writes only what is new without
// parsing the lines it shipped.
type cursorFileOf struct {
	path  string
	after uint64
	found bool // the file exists and holds a cursor; else the export starts as --since says
}

// readCursorFile reads path. A missing file is a first run; a file holding anything but one
// cursor is refused, since guessing would either repeat or skip events.
func readCursorFile(path string) (*cursorFileOf, error) {
	c := &cursorFileOf{path: path}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal export --cursor-file: %v", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("journal export --cursor-file: %s does not hold a cursor (a number, written by an earlier export): fix or delete it (deleted, the next export writes everything again)", path)
	}
	c.after, c.found = n, true
	return c, nil
}

// keep writes last to the file, whole or not at all (a temporary file renamed over it): the
// export's lines were written before, so a crash in between repeats the last batch at worst,
// and never skips one. Each line's cursor lets a reader drop a repeat.
func (c *cursorFileOf) keep(last uint64) error {
	tmp, err := os.CreateTemp(filepath.Dir(c.path), "."+filepath.Base(c.path)+".*")
	if err != nil {
		return fmt.Errorf("journal export --cursor-file: %v", err)
	}
	_, werr := fmt.Fprintf(tmp, "%d\n", last)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("journal export --cursor-file: write %s: %v", c.path, err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("journal export --cursor-file: %v", err)
	}
	return nil
}
