package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"syscall"
)

// checkPages walks the page tree of the bbolt file f from the meta page
// bbolt will use, before any bbolt cursor does, and fails with ErrCorrupt
// on a page referenced twice (a cycle), out of the file, of the wrong type,
// or nested too deep. bbolt follows page references without such checks: a
// branch page that names itself makes its cursors descend forever,
// allocating as they go. It also counts the records of the keys bucket
// (for Open to compare with the count in meta) and refuses a bucket among
// them. It reads no record's value.
//
// The file is read through a read-only memory map, unmapped on
// return, so that the walk costs no system call per page and leaves
// nothing mapped; the caller makes a fault on it (a file cut short
// meanwhile) a panic. Memory is bounded by the file: one bit per page.
//
// The layout read here is bbolt's on-disk format (version 2), little
// endian on the platforms Go supports bbolt on: a 16-byte page header (id
// uint64, flags uint16, count uint16, overflow uint32), then 16-byte branch
// elements (pos uint32, ksize uint32, pgid uint64) or leaf elements (flags
// uint32, pos uint32, ksize uint32, vsize uint32) whose pos is relative to
// the element; a bucket's value starts with its root page id and sequence,
// and a root of 0 means the bucket's leaf page is inline after them.
func checkPages(f *os.File, path string, size int64) (keys uint64, err error) {
	c := pageChecker{path: path}
	if size < 2*minBoltPageSize || size != int64(int(size)) {
		return 0, c.corrupt("%d bytes is no bbolt file", size)
	}
	c.file, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|mapPopulate)
	if err != nil {
		return 0, fmt.Errorf("boltstore: map %s: %w", path, err)
	}
	defer syscall.Munmap(c.file)
	m, err := c.meta()
	if err != nil {
		return 0, err
	}
	c.pageSize, c.highWater = int64(m.pageSize), m.pgid
	if c.highWater > uint64(size/c.pageSize) {
		return 0, c.corrupt("the meta page names %d pages in a file of %d", c.highWater, size/c.pageSize)
	}
	c.seen = make([]byte, (c.highWater+7)/8)
	if err := c.visit(m.root, 0, inRoot); err != nil {
		return 0, err
	}
	return c.keys, nil
}

// tree says whose pages checkPage is reading.
type tree int

const (
	inRoot tree = iota // the top-level buckets
	inKeys             // the keys bucket: its records are counted
	inOther
)

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
	file      []byte // the file, mapped
	path      string
	pageSize  int64
	highWater uint64
	seen      []byte // a bit per page id
	keys      uint64 // records seen in the keys bucket
}

// meta returns the valid meta page with the highest transaction ID, as
// bbolt chooses it.
func (c *pageChecker) meta() (boltMeta, error) {
	var best boltMeta
	found := false
	for i, off := 0, int64(0); i < 2; i++ {
		if off+pageHeaderSize+metaSize > int64(len(c.file)) {
			return best, c.corrupt("meta page %d is past the end of the file", i)
		}
		m := c.file[off+pageHeaderSize : off+pageHeaderSize+metaSize]
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
func (c *pageChecker) visit(id uint64, depth int, t tree) error {
	if depth > maxTreeDepth {
		return c.corrupt("page tree deeper than %d levels at page %d", maxTreeDepth, id)
	}
	if id < 2 || id >= c.highWater {
		return c.corrupt("a page reference (%d) points outside the file's %d pages", id, c.highWater)
	}
	hdr := c.file[int64(id)*c.pageSize:]
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
	return c.checkPage(hdr[:int64(overflow+1)*c.pageSize], id, depth, t)
}

// checkPage checks the elements of a branch or leaf page (which may be a
// bucket's inline page) of tree t and visits the pages they reference.
func (c *pageChecker) checkPage(page []byte, id uint64, depth int, t tree) error {
	flags := binary.LittleEndian.Uint16(page[8:])
	count := int(binary.LittleEndian.Uint16(page[10:]))
	if pageHeaderSize+count*elementSize > len(page) || flags != branchPageFlag && flags != leafPageFlag {
		return c.corrupt("page %d has %d elements, flags %#x", id, count, flags)
	}
	for i := range count {
		e := page[pageHeaderSize+i*elementSize:]
		at := pageHeaderSize + i*elementSize
		if flags == branchPageFlag {
			if err := c.visit(binary.LittleEndian.Uint64(e[8:]), depth+1, t); err != nil {
				return err
			}
			continue
		}
		if binary.LittleEndian.Uint32(e[0:])&bucketLeafFlag == 0 {
			if t == inKeys {
				c.keys++
			}
			continue
		}
		if t == inKeys {
			return c.corrupt("page %d: a bucket among the key records", id)
		}
		pos, ksize, vsize := uint64(binary.LittleEndian.Uint32(e[4:])), uint64(binary.LittleEndian.Uint32(e[8:])), uint64(binary.LittleEndian.Uint32(e[12:]))
		start := uint64(at) + pos + ksize
		if vsize < bucketHeader || start+vsize > uint64(len(page)) {
			return c.corrupt("page %d: a bucket value out of its page", id)
		}
		sub := inOther
		if t == inRoot && bytes.Equal(page[start-ksize:start], bucketKeys) {
			sub = inKeys
		}
		v := page[start : start+vsize]
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			if err := c.visit(root, depth+1, sub); err != nil {
				return err
			}
		} else if len(v) < bucketHeader+pageHeaderSize {
			return c.corrupt("page %d: an inline bucket without its page", id)
		} else if err := c.checkPage(v[bucketHeader:], id, depth+1, sub); err != nil {
			return err
		}
	}
	return nil
}

// corrupt is ErrCorrupt naming the file and what is wrong with it.
func (c *pageChecker) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: "+format, append([]any{ErrCorrupt, c.path}, args...)...)
}
