package clock

import (
	"testing"
	"time"
)

func fired(t Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestFakeTimers(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	a := f.NewTimer(time.Second)
	b := f.NewTimer(2 * time.Second)
	c := f.NewTimer(3 * time.Second)
	if f.Timers() != 3 {
		t.Fatalf("Timers = %d", f.Timers())
	}
	f.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("fired early")
	}
	f.Advance(time.Millisecond)
	if !fired(a) || fired(b) {
		t.Fatal("a should fire at 1s, b not yet")
	}
	if !c.Stop() || c.Stop() {
		t.Error("Stop reports whether the timer was active")
	}
	if b.Reset(5*time.Second) != true {
		t.Error("Reset of an active timer reports true")
	}
	f.Advance(2 * time.Second)
	if fired(b) || fired(c) {
		t.Fatal("reset or stopped timer fired")
	}
	f.Set(t0) // never backwards
	if !f.Now().Equal(t0.Add(3 * time.Second)) {
		t.Errorf("Now = %v", f.Now())
	}
	f.Advance(3 * time.Second)
	if !fired(b) {
		t.Error("reset timer did not fire at its new time")
	}
	if z := f.NewTimer(0); !fired(z) {
		t.Error("a zero timer fires at once")
	}
	if f.Timers() != 0 {
		t.Errorf("Timers = %d after all fired", f.Timers())
	}
}

func TestRealClock(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if c.Now().IsZero() {
		t.Error("zero time")
	}
}
