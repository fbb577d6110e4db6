package kafka

// Fetch responses are encoded with kmsg but their records are not copied into
// the buffer: each partition that has data gets a unique random marker as its
// RecordBatches; after encoding, the markers are found in order, their length
// prefix (int32 for non-flexible nullable bytes, uvarint len+1 for compact
// bytes in flexible versions) is replaced by one for the real length, and the
// marker bytes by the storage chunks as file parts (sendfile).
//
// The markers are 16 bytes, 12 of them random per response: nothing a client
// controls can forge them, and the encoder's other output is metadata whose
// layout kmsg owns. Each marker is checked to sit right after the length
// prefix kmsg wrote for it; a miss is a bug, answered by closing the
// connection rather than by sending a wrong frame.

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/klite/klite/netloop"
)

const markerBytes = 16

// noRecords is what a partition without data carries: empty, not null, as
// Kafka sends it.
var noRecords = []byte{}

// sendSpliced encodes resp (whose partitions line up with reads, in order),
// splices in the chunks of reads, and completes r. The response's Release
// releases every read.
func sendSpliced(r *request, resp *kmsg.FetchResponse, reads []partRead) {
	withData, nChunks := 0, 0
	for i := range reads {
		if n := len(reads[i].res.Chunks); n > 0 {
			withData++
			nChunks += n
		}
	}
	markers := make([]byte, markerBytes*withData)
	hi, lo := rand.Uint64(), rand.Uint32()
	for k := 0; k < withData; k++ {
		m := markers[k*markerBytes : (k+1)*markerBytes]
		binary.BigEndian.PutUint64(m[0:], hi)
		binary.BigEndian.PutUint32(m[8:], lo)
		binary.BigEndian.PutUint32(m[12:], uint32(k))
	}
	i, k := 0, 0
	for ti := range resp.Topics {
		ps := resp.Topics[ti].Partitions
		for pi := range ps {
			if len(reads[i].res.Chunks) > 0 {
				ps[pi].RecordBatches = markers[k*markerBytes : (k+1)*markerBytes]
				k++
			} else {
				ps[pi].RecordBatches = noRecords
			}
			i++
		}
	}

	r.setThrottle(resp)
	buf := getBuf()
	enc := r.appendHeader((*buf)[:0])
	enc = resp.AppendTo(enc)
	*buf = enc
	release := func() {
		for i := range reads {
			reads[i].res.Release()
		}
		putBuf(buf)
	}

	parts := make([]netloop.Part, 0, 1+2*withData+nChunks)
	prefixes := make([]byte, 0, 5*withData)
	pos := 0
	k = 0
	for i := range reads {
		res := &reads[i].res
		if len(res.Chunks) == 0 {
			continue
		}
		m := markers[k*markerBytes : (k+1)*markerBytes]
		k++
		at := bytes.Index(enc[pos:], m)
		start, ok := -1, false
		if at >= 0 {
			at += pos
			if r.flexible {
				start = at - 1
				ok = start >= pos && enc[start] == markerBytes+1
			} else {
				start = at - 4
				ok = start >= pos && binary.BigEndian.Uint32(enc[start:]) == markerBytes
			}
		}
		if !ok || res.Bytes > math.MaxInt32-1 {
			// Cannot happen with a correct encoder; never send a bad frame.
			release()
			r.close()
			return
		}
		parts = append(parts, netloop.Part{Bytes: enc[pos:start]})
		p0 := len(prefixes)
		if r.flexible {
			prefixes = kbin.AppendUvarint(prefixes, uint32(res.Bytes)+1)
		} else {
			prefixes = kbin.AppendInt32(prefixes, int32(res.Bytes))
		}
		parts = append(parts, netloop.Part{Bytes: prefixes[p0:len(prefixes):len(prefixes)]})
		for _, c := range res.Chunks {
			parts = append(parts, netloop.Part{File: c.File, Off: c.Off, Len: c.Len})
		}
		pos = at + markerBytes
	}
	parts = append(parts, netloop.Part{Bytes: enc[pos:]})
	fetchErr(r, resp)
	r.complete(netloop.Response{Parts: parts, Release: release})
}
