package main

import "errors"

// closers is the stack of stops for the components serve has started:
// each is pushed once its component runs, and close runs them newest
// first, so a failed start and the graceful stop take the same path and
// a component always stops before the ones it uses.
type closers []func() error

func (c *closers) push(stop func() error) { *c = append(*c, stop) }

// close runs every stop, newest first, even after one fails, and empties
// the stack; it returns their errors joined.
func (c *closers) close() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		if err := (*c)[i](); err != nil {
			errs = append(errs, err)
		}
	}
	*c = nil
	return errors.Join(errs...)
}
