// Package syncbuf is a buffer that several goroutines may write while another reads it: the
// logs that tests, test servers and benchmarks collect from the code they run and search
// afterwards (for secrets, for a line that explains a failure).
package syncbuf
