package main

import (
	"context"
	"reflect"
	"slices"
	"sync"

	"github.com/smsbridge/smsbridge/bridge"
	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout"
)

// routeSet owns the SMPP clients, one per route: [smsc] as "default",
// serving every number, then each [[routes]] entry. Clients are started by
// run, and by apply while running (a reload).
type routeSet struct {
	mu      sync.Mutex
	runs    []*routeRun
	ctx     context.Context // run's; nil before run
	wg      sync.WaitGroup
	pending []*routeRun // made before run, started by it
}

type routeRun struct {
	name   string
	sc     SMSCConfig
	cl     *smppout.Client
	cancel context.CancelFunc
}

// want is the routes of c, by name, in order.
func want(c Config) ([]string, map[string]SMSCConfig) {
	var names []string
	scs := map[string]SMSCConfig{}
	if c.SMSC.Addr != "" { // set by the simulator in demo mode
		names = append(names, "default")
		scs["default"] = c.SMSC
	}
	for _, r := range c.Routes {
		names = append(names, r.Name)
		scs[r.Name] = r.SMSCConfig
	}
	return names, scs
}

// apply makes the clients match c: unchanged ones are kept, new or changed
// ones made (and started if running), removed ones stopped (they drain
// their window and unbind).
func (rs *routeSet) apply(a *app, c Config) (kept, started, stopped int) {
	names, scs := want(c)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := map[string]*routeRun{}
	for _, r := range rs.runs {
		old[r.name] = r
	}
	var next []*routeRun
	for _, name := range names {
		if o := old[name]; o != nil && reflect.DeepEqual(o.sc, scs[name]) {
			next = append(next, o)
			delete(old, name)
			kept++
			continue
		}
		r := &routeRun{name: name, sc: scs[name], cl: a.newClient(name, scs[name])}
		next = append(next, r)
		rs.start(r)
		started++
	}
	for _, o := range old {
		if o.cancel != nil {
			o.cancel()
		}
		rs.pending = slices.DeleteFunc(rs.pending, func(p *routeRun) bool { return p == o })
		stopped++
	}
	rs.runs = next
	return kept, started, stopped
}

// start runs r's client if the set runs; else run will. Called with mu.
func (rs *routeSet) start(r *routeRun) {
	if rs.ctx == nil {
		rs.pending = append(rs.pending, r)
		return
	}
	if rs.ctx.Err() != nil {
		return // shutting down: run is waiting for the others
	}
	ctx, cancel := context.WithCancel(rs.ctx)
	r.cancel = cancel
	rs.wg.Go(func() { r.cl.Run(ctx) })
}

// run starts the clients and returns when ctx is done and every client has
// drained and unbound.
func (rs *routeSet) run(ctx context.Context) error {
	rs.mu.Lock()
	rs.ctx = ctx
	for _, r := range rs.pending {
		rs.start(r)
	}
	rs.pending = nil
	rs.mu.Unlock()
	<-ctx.Done()
	rs.wg.Wait()
	return nil
}

func (rs *routeSet) list() []*routeRun {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]*routeRun(nil), rs.runs...)
}

func (rs *routeSet) anyBound() bool {
	for _, r := range rs.list() {
		if r.cl.Bound() {
			return true
		}
	}
	return false
}

// bridgeRoutes is the routes of c for the dispatcher, with the clients of
// the set. base is how the front door encodes at DATA: a route that wants
// otherwise gets its records encoded again (before any part is sent).
func (rs *routeSet) bridgeRoutes(c Config, base convert.Options) []bridge.Route {
	byName := map[string]RouteConfig{}
	for _, r := range c.Routes {
		byName[r.Name] = r
	}
	var out []bridge.Route
	for _, r := range rs.list() {
		br := bridge.Route{Name: r.name, SMSCID: r.sc.SMSCID, SMSC: r.cl, GSMPacked: r.sc.GSMPacked}
		if rc, ok := byName[r.name]; ok && r.name != "default" {
			br.Prefixes, br.Priority, br.Source = rc.Prefixes, rc.Priority, rc.SourceAddr
		} else {
			br.Priority = 1 << 30 // the default route is the last resort
		}
		opt := c.convertOptions()
		if r.name != "default" {
			opt = c.routeEncoding(RouteConfig{SMSCConfig: r.sc})
		}
		if !reflect.DeepEqual(opt, base) {
			br.Encoding = &opt
		}
		out = append(out, br)
	}
	return out
}

// newClient makes the SMPP client of a route; its handlers reach the
// dispatcher, which exists by the time the client runs.
func (a *app) newClient(name string, sc SMSCConfig) *smppout.Client {
	types, _ := sc.sourceTypes() // validated with the config
	idScope := bridge.Route{Name: name, SMSCID: sc.SMSCID}.IDScope()
	return smppout.New(smppout.Config{
		SourceTypes:   types,
		Addr:          sc.Addr,
		SystemID:      sc.SystemID,
		Password:      sc.Password,
		SystemType:    sc.SystemType,
		Window:        sc.Window,
		EnquireLink:   sc.EnquireLink.Duration,
		RespTimeout:   sc.RespTimeout.Duration,
		BackoffMin:    sc.ReconnectMin.Duration,
		BackoffMax:    sc.ReconnectMax.Duration,
		BindMode:      smppout.BindMode(sc.BindMode),
		Binds:         sc.Binds,
		TLS:           tlsFor(sc),
		TPS:           sc.TPS,
		IDFormat:      smppout.IDFormat(sc.IDFormat),
		GSMDataCoding: byte(sc.GSMDataCoding),
		MO: func(ctx context.Context, m smppout.MO) error {
			return a.bridge.MOHandler(name)(ctx, m)
		},
		Late: func(tag any, smscID string) { a.bridge.LateHandler(idScope)(tag, smscID) },
	}, func(ctx context.Context, r smppout.Receipt) error {
		return a.bridge.ReceiptHandler(idScope)(ctx, r)
	}, a.log.With("component", "smpp", "route", name))
}
