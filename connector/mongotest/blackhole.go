package mongotest

import (
	"io"
	"net"
	"strings"
	"sync"
)

// Proxy forwards TCP connections to a server until it is black-holed: from then on it still
// accepts connections and reads what is sent, but answers nothing and forwards nothing, as a
// server behind a dropped route or a hung process does. Unlike a closed port (refused at once),
// a black hole makes every client wait for its own timeouts: the case the bot's per-connector
// limits and circuit breaker are for.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	hole  bool
	conns map[net.Conn]bool
	done  bool
}

// NewProxy listens on a loopback port and forwards to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URI is uri (a server's connection string) with its host:port replaced by the proxy's.
func (p *Proxy) URI(uri string) string { return strings.Replace(uri, p.target, p.Addr(), 1) }

// BlackHole stops all answers, on open connections and new ones.
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = true
	// What was forwarding stops: each pipe sees its connection marked and goes silent.
	for c := range p.conns {
		p.conns[c] = true
	}
}

// Restore ends the outage as a restarted server or a healed route ends: the silent
// connections are reset (the client sees them fail and opens new ones), and new connections
// are forwarded again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = false
	for c, silent := range p.conns {
		if silent {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *Proxy) silent(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[c]
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[c] = p.hole
		hole := p.hole
		p.mu.Unlock()
		if hole {
			go p.drain(c)
			continue
		}
		go p.pipe(c)
	}
}

// drain reads and drops everything until the connection closes.
func (p *Proxy) drain(c net.Conn) {
	_, _ = io.Copy(io.Discard, c)
	p.forget(c)
}

func (p *Proxy) forget(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// pipe forwards both ways until either side closes or the proxy black-holes this connection.
func (p *Proxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = p.conns[c]
	p.mu.Unlock()
	forward := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				dst.Close()
				return
			}
			if p.silent(c) {
				// Black-holed: keep reading so the sender is never refused, answer nothing.
				continue
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				src.Close()
				return
			}
		}
	}
	go forward(s, c)
	forward(c, s)
	p.forget(c, s)
}
