// hang is a small "sync client" that hangs the way real services do: its
// worker waits forever for a reply from a server that accepted the
// connection and never answers, while other goroutines pile up behind it.
// `scripts/demo` runs goat stacks on it.
package main

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"time"
)

type client struct {
	mu   sync.Mutex
	conn net.Conn
}

// fetch holds the client lock while it waits for the reply, so every other
// caller queues up on the mutex.
func (c *client) fetch(path string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintf(c.conn, "GET %s\n", path); err != nil {
		return "", err
	}
	return bufio.NewReader(c.conn).ReadString('\n') // blocks forever
}

func silentServer(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) { // reads requests, never answers
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}(conn)
	}
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go silentServer(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	c := &client{conn: conn}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.fetch(fmt.Sprintf("/file/%d", i))
		}(i)
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Println("ready")
	wg.Wait()
}
