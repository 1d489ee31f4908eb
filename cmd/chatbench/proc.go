package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is what Linux tells about a process at one moment.
type procSample struct {
	at     time.Time
	rssKiB int64
	cpu    time.Duration // user + system
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// sampleProc reads VmRSS from /proc/PID/status and the CPU time from
// /proc/PID/stat.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				s.rssKiB, err = strconv.ParseInt(f[0], 10, 64)
				found = err == nil
			}
		}
	}
	if !found {
		return s, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name is in parentheses and may contain spaces: fields
	// count from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	s.cpu = time.Duration(utime+stime) * clockTick
	return s, nil
}

// procDelta is a process's use between two samples.
type procDelta struct {
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPercent   float64 `json:"cpu_percent"` // of one core, over the interval
}

func deltaOf(a, b procSample) procDelta {
	d := procDelta{RSSBeforeKiB: a.rssKiB, RSSAfterKiB: b.rssKiB, CPUSeconds: (b.cpu - a.cpu).Seconds()}
	if el := b.at.Sub(a.at); el > 0 {
		d.CPUPercent = 100 * float64(b.cpu-a.cpu) / float64(el)
	}
	return d
}

// cpuWindow measures the CPU the server (with -pid) and chatbench itself
// use between begin and end, for a cost per operation that does not depend
// on what else the machine is running.
type cpuWindow struct {
	pid                      int
	srvA, srvB, selfA, selfB procSample
	srvOK, selfOK            bool
}

func (w *cpuWindow) begin() {
	var err error
	if w.pid > 0 {
		w.srvA, err = sampleProc(w.pid)
		w.srvOK = err == nil
	}
	w.selfA, err = sampleProc(os.Getpid())
	w.selfOK = err == nil
}

func (w *cpuWindow) end() {
	var err error
	if w.srvOK {
		w.srvB, err = sampleProc(w.pid)
		w.srvOK = err == nil
	}
	if w.selfOK {
		w.selfB, err = sampleProc(os.Getpid())
		w.selfOK = err == nil
	}
}

// cpuReport is the CPU use over a measurement, per operation (a delivered
// message, a login, an opened session).
type cpuReport struct {
	ServerPercent    float64 `json:"server_percent,omitempty"` // of one core
	ServerPerOpUs    float64 `json:"server_us_per_op,omitempty"`
	ChatbenchPercent float64 `json:"chatbench_percent"`
	ChatbenchPerOpUs float64 `json:"chatbench_us_per_op"`
}

func (w *cpuWindow) report(ops int64) *cpuReport {
	if !w.selfOK {
		return nil
	}
	r := &cpuReport{}
	per := func(d procDelta) float64 {
		if ops <= 0 {
			return 0
		}
		return d.CPUSeconds * 1e6 / float64(ops)
	}
	self := deltaOf(w.selfA, w.selfB)
	r.ChatbenchPercent, r.ChatbenchPerOpUs = self.CPUPercent, per(self)
	if w.srvOK {
		srv := deltaOf(w.srvA, w.srvB)
		r.ServerPercent, r.ServerPerOpUs = srv.CPUPercent, per(srv)
	}
	return r
}

// String prints the report for an operation named op.
func (r *cpuReport) line(op string) string {
	if r == nil {
		return ""
	}
	s := ""
	if r.ServerPercent > 0 {
		s = fmt.Sprintf("server %.0f%% of a core, %.1f µs per %s; ", r.ServerPercent, r.ServerPerOpUs, op)
	}
	return s + fmt.Sprintf("chatbench %.0f%% of a core, %.1f µs per %s", r.ChatbenchPercent, r.ChatbenchPerOpUs, op)
}
