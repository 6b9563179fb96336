// Package agent holds the host–guest protocol (spec.md), the host's Client, the guest's Server and the
// guest's PID 1. It knows nothing of Packer.
package agent

import (
	"errors"
	"fmt"
)

// ProtocolVersion is the version the channel's banner announces; see spec.md §1.
const ProtocolVersion = 3

// frameType is the first byte of every frame on a stream.
type frameType uint8

const (
	frameRequest frameType = iota + 1
	frameStdin
	frameStdout
	frameStderr
	frameData
	frameEOF
	frameExit
	frameResult
	frameSignal
	frameResize
)

// Frame header: one type byte and a big-endian payload length.
const (
	sizeOfType   = 1
	sizeOfLength = 4
	headerSize   = sizeOfType + sizeOfLength
)

// maxPayload bounds a frame so that a corrupt length cannot make a side allocate without limit.
const maxPayload = 1 << 20

// chunkSize is how much file data one data frame carries: large frames keep per-frame costs
// (one yamux write, one serial-line write) low.
const chunkSize = 256 << 10

func (t frameType) String() string {
	switch t {
	case frameRequest:
		return "request"
	case frameStdin:
		return "stdin"
	case frameStdout:
		return "stdout"
	case frameStderr:
		return "stderr"
	case frameData:
		return "data"
	case frameEOF:
		return "eof"
	case frameExit:
		return "exit"
	case frameResult:
		return "result"
	case frameSignal:
		return "signal"
	case frameResize:
		return "resize"
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// Operation names, the Request.Op values.
const (
	OpExec     = "exec"
	OpUpload   = "upload"
	OpUntar    = "untar"
	OpDownload = "download"
	OpTar      = "tar"
	OpShutdown = "shutdown"
	// OpProxy opens a stream from the guest: it carries one TCP connection to the host's proxy.
	OpProxy = "proxy"
)

var (
	// ErrFrameTooLarge is returned for a frame whose length is over maxPayload.
	ErrFrameTooLarge = errors.New("frame larger than the protocol allows")
	// ErrUnexpectedFrame is returned when a frame arrives that the operation does not allow there.
	ErrUnexpectedFrame = errors.New("unexpected frame")
)
