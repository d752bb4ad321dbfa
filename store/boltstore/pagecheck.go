package boltstore

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkPages walks the page tree of the bbolt file f from the meta page
// bbolt will use, before any bbolt cursor does, and fails with ErrCorrupt
// on a page referenced twice (a cycle), out of the file, of the wrong type,
// or nested too deep. bbolt follows page references without such checks: a
// branch page that names itself makes its cursors descend forever,
// allocating as they go. Memory here is bounded by the file: one page
// buffer at a time and one bit per page.
//
// The layout read here is bbolt's on-disk format (version 2), little
// endian on the platforms Go supports bbolt on: a 16-byte page header (id
// uint64, flags uint16, count uint16, overflow uint32), then 16-byte branch
// elements (pos uint32, ksize uint32, pgid uint64) or leaf elements (flags
// uint32, pos uint32, ksize uint32, vsize uint32) whose pos is relative to
// the element; a bucket's value starts with its root page id and sequence,
// and a root of 0 means the bucket's leaf page is inline after them.
func checkPages(f *os.File, path string, size int64) error {
	c := pageChecker{f: f, path: path, size: size}
	m, err := c.meta()
	if err != nil {
		return err
	}
	c.pageSize, c.highWater = int64(m.pageSize), m.pgid
	if c.highWater > uint64(size/c.pageSize) {
		return c.corrupt("the meta page names %d pages in a file of %d", c.highWater, size/c.pageSize)
	}
	c.seen = make([]byte, (c.highWater+7)/8)
	return c.visit(m.root, 0)
}

const (
	pageHeaderSize  = 16
	elementSize     = 16
	bucketHeader    = 16
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	bucketLeafFlag  = 0x01
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	metaSize        = 64 // through the checksum
	maxTreeDepth    = 64 // far beyond any real tree of this store
	minBoltPageSize = 512
)

type boltMeta struct {
	pageSize   uint32
	root, pgid uint64
	txid       uint64
}

type pageChecker struct {
	f              *os.File
	path           string
	size, pageSize int64
	highWater      uint64
	seen           []byte // a bit per page id
}

// meta returns the valid meta page with the highest transaction ID, as
// bbolt chooses it.
func (c *pageChecker) meta() (boltMeta, error) {
	var best boltMeta
	found := false
	for i, off := 0, int64(0); i < 2; i++ {
		var b [pageHeaderSize + metaSize]byte
		if _, err := c.f.ReadAt(b[:], off); err != nil {
			return best, c.corrupt("meta page %d: %v", i, err)
		}
		m := b[pageHeaderSize:]
		h := fnv.New64a()
		h.Write(m[:metaSize-8])
		ok := binary.LittleEndian.Uint32(m[0:]) == boltMagic && binary.LittleEndian.Uint32(m[4:]) == boltVersion &&
			h.Sum64() == binary.LittleEndian.Uint64(m[56:])
		ps := binary.LittleEndian.Uint32(m[8:])
		ok = ok && ps >= minBoltPageSize && ps <= 1<<20
		if ok {
			bm := boltMeta{pageSize: ps, root: binary.LittleEndian.Uint64(m[16:]), pgid: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}
			if !found || bm.txid > best.txid {
				best, found = bm, true
			}
		}
		if i == 0 {
			if !ok {
				ps = uint32(os.Getpagesize()) // where bbolt looks for meta 1 then
			}
			off = int64(ps)
		}
	}
	if !found {
		return best, c.corrupt("no valid meta page")
	}
	return best, nil
}

// visit checks page id and what it references, depth levels down.
func (c *pageChecker) visit(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return c.corrupt("page tree deeper than %d levels at page %d", maxTreeDepth, id)
	}
	if id < 2 || id >= c.highWater {
		return c.corrupt("a page reference (%d) points outside the file's %d pages", id, c.highWater)
	}
	var hdr [pageHeaderSize]byte
	if _, err := c.f.ReadAt(hdr[:], int64(id)*c.pageSize); err != nil {
		return c.corrupt("page %d: %v", id, err)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if binary.LittleEndian.Uint64(hdr[0:]) != id || id+overflow >= c.highWater {
		return c.corrupt("page %d is not what its reference expects", id)
	}
	for p := id; p <= id+overflow; p++ {
		if c.seen[p/8]&(1<<(p%8)) != 0 {
			return c.corrupt("page %d is referenced twice (a cycle in the page tree)", p)
		}
		c.seen[p/8] |= 1 << (p % 8)
	}
	page := make([]byte, int64(overflow+1)*c.pageSize)
	if _, err := c.f.ReadAt(page, int64(id)*c.pageSize); err != nil && err != io.EOF {
		return c.corrupt("page %d: %v", id, err)
	}
	return c.checkPage(page, id, depth)
}

// checkPage checks the elements of a branch or leaf page (which may be a
// bucket's inline page) and visits the pages they reference.
func (c *pageChecker) checkPage(page []byte, id uint64, depth int) error {
	flags := binary.LittleEndian.Uint16(page[8:])
	count := int(binary.LittleEndian.Uint16(page[10:]))
	if pageHeaderSize+count*elementSize > len(page) || flags != branchPageFlag && flags != leafPageFlag {
		return c.corrupt("page %d has %d elements, flags %#x", id, count, flags)
	}
	for i := range count {
		e := page[pageHeaderSize+i*elementSize:]
		at := pageHeaderSize + i*elementSize
		if flags == branchPageFlag {
			if err := c.visit(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		if binary.LittleEndian.Uint32(e[0:])&bucketLeafFlag == 0 {
			continue
		}
		pos, ksize, vsize := uint64(binary.LittleEndian.Uint32(e[4:])), uint64(binary.LittleEndian.Uint32(e[8:])), uint64(binary.LittleEndian.Uint32(e[12:]))
		start := uint64(at) + pos + ksize
		if vsize < bucketHeader || start+vsize > uint64(len(page)) {
			return c.corrupt("page %d: a bucket value out of its page", id)
		}
		v := page[start : start+vsize]
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			if err := c.visit(root, depth+1); err != nil {
				return err
			}
		} else if len(v) < bucketHeader+pageHeaderSize {
			return c.corrupt("page %d: an inline bucket without its page", id)
		} else if err := c.checkPage(v[bucketHeader:], id, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// corrupt is ErrCorrupt naming the file and what is wrong with it.
func (c *pageChecker) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: "+format, append([]any{ErrCorrupt, c.path}, args...)...)
}
