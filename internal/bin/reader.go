// Package bin reads the big-endian, length-prefixed encodings of klite's
// own files (the offsets log and the transaction state it carries). A
// Reader past its input or given a negative length turns Bad and returns
// zero values from then on, so a decoder checks once at the end.
package bin

import "encoding/binary"

// Reader consumes B from the front.
type Reader struct {
	B   []byte
	Bad bool
}

// Take returns the next n bytes (aliasing B), nil when fewer remain.
func (d *Reader) Take(n int) []byte {
	if d.Bad || n < 0 || len(d.B) < n {
		d.Bad = true
		return nil
	}
	v := d.B[:n]
	d.B = d.B[n:]
	return v
}

func (d *Reader) U8() byte {
	if b := d.Take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *Reader) U16() uint16 {
	if b := d.Take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *Reader) U32() uint32 {
	if b := d.Take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *Reader) U64() uint64 {
	if b := d.Take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *Reader) I32() int32 { return int32(d.U32()) }
func (d *Reader) I64() int64 { return int64(d.U64()) }

// Str reads a string with a u16 length; LStr one with a u32 length.
func (d *Reader) Str() string  { return string(d.Take(int(d.U16()))) }
func (d *Reader) LStr() string { return string(d.Take(int(d.U32()))) }
