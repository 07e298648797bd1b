package proxy

import (
	"container/list"
	"crypto/tls"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// leafCache holds issued leaf certificates, at most max of them, evicting
// the least recently used. Concurrent requests for the same host share one
// generation (single flight); a leaf close to expiry is issued anew.
type leafCache struct {
	issue func(host string) (*tls.Certificate, error)
	now   func() time.Time
	max   int

	mu      sync.Mutex
	order   *list.List // of *leafEntry, front = most recently used
	entries map[string]*list.Element

	flight singleflight.Group

	// generated counts issued leaves, for tests and metrics.
	generated func()
}

type leafEntry struct {
	host string
	cert *tls.Certificate
}

func newLeafCache(max int, now func() time.Time, issue func(string) (*tls.Certificate, error)) *leafCache {
	if max < 1 {
		max = 1
	}
	return &leafCache{
		issue:     issue,
		now:       now,
		max:       max,
		order:     list.New(),
		entries:   make(map[string]*list.Element),
		generated: func() {},
	}
}

// get returns the leaf for host, issuing it if needed.
func (c *leafCache) get(host string) (*tls.Certificate, error) {
	if cert := c.lookup(host); cert != nil {
		return cert, nil
	}
	v, err, _ := c.flight.Do(host, func() (any, error) {
		// Another caller may have finished while we queued.
		if cert := c.lookup(host); cert != nil {
			return cert, nil
		}
		cert, err := c.issue(host)
		if err != nil {
			return nil, err
		}
		c.generated()
		c.store(host, cert)
		return cert, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

func (c *leafCache) lookup(host string) *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[host]
	if !ok {
		return nil
	}
	e := el.Value.(*leafEntry)
	if !c.now().Add(leafRenewBefore).Before(e.cert.Leaf.NotAfter) {
		c.order.Remove(el)
		delete(c.entries, host)
		return nil
	}
	c.order.MoveToFront(el)
	return e.cert
}

func (c *leafCache) store(host string, cert *tls.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[host]; ok {
		el.Value.(*leafEntry).cert = cert
		c.order.MoveToFront(el)
		return
	}
	c.entries[host] = c.order.PushFront(&leafEntry{host: host, cert: cert})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*leafEntry).host)
	}
}

// len returns the number of cached leaves.
func (c *leafCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
