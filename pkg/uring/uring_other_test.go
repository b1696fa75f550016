//go:build !linux

package uring

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLinuxOnly(t *testing.T) {
	assert.EqualError(t, Available(), "io_uring: Linux only")
	r, err := New(8)
	assert.Nil(t, r)
	assert.EqualError(t, err, "io_uring: Linux only")
}
