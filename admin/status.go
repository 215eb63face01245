package admin

import (
	"cmp"
	"html/template"
	"net/http"
	"slices"

	"github.com/smsbridge/smsbridge/store"
)

// statusTmpl is the read-only status page: no JavaScript, refreshes itself.
var statusTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>smsbridge status</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}</style>
</head><body>
<h1>smsbridge</h1>
<h2>Routes</h2>
<table><tr><th>name</th><th>address</th><th>bound</th><th>binds</th><th>window in use</th><th>TPS</th></tr>
{{range .Routes}}<tr><td>{{.Name}}</td><td>{{.Addr}}</td><td>{{if .Bound}}yes{{else}}<b>no</b>{{end}}</td>
<td class="num">{{.Binds}}</td><td class="num">{{.WindowInUse}}</td><td class="num">{{printf "%.1f" .TPS}}</td></tr>
{{else}}<tr><td colspan="6">no routes</td></tr>{{end}}</table>
<h2>Queue</h2>
<table><tr><th>state</th><th>records</th></tr>
{{range .Counts}}<tr><td>{{.State}}</td><td class="num">{{.N}}</td></tr>{{end}}</table>
<h2>Last {{len .Records}} records</h2>
<table><tr><th>id</th><th>created</th><th>from</th><th>to</th><th>segments</th><th>state</th><th>last error</th></tr>
{{range .Records}}<tr><td>{{.ID}}</td><td>{{.Created.Format "2006-01-02 15:04:05"}}</td><td>{{.From}}</td><td>{{.To}}</td>
<td class="num">{{len .Segments}}</td><td>{{.State}}</td><td>{{.LastError}}</td></tr>{{end}}</table>
</body></html>
`))

type stateCount struct {
	State store.State
	N     int
}

func (s *Server) statusPage(w http.ResponseWriter, _ *http.Request) {
	counts, err := s.q.Counts()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	recs, _, err := s.q.Query(store.Query{Limit: 50})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var cs []stateCount
	for st, n := range counts {
		cs = append(cs, stateCount{st, n})
	}
	slices.SortFunc(cs, func(a, b stateCount) int { return cmp.Compare(a.State, b.State) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err = statusTmpl.Execute(w, map[string]any{"Routes": s.cfg.Routes(), "Counts": cs, "Records": recs})
	if err != nil {
		s.log.Warn("admin: status page", "err", err)
	}
}
