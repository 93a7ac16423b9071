// Package chart draws the benchmark page's bar charts as PNG files with
// gonum/plot: one horizontal bar per way of running a program, so that the
// peers compare at a glance.
package chart

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bar is one measured value.
type Bar struct {
	Label string
	Value float64
	Mote  bool // drawn in Mote's colour; peers are grey
}

var (
	moteColour = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
	peerColour = color.RGBA{R: 0x9a, G: 0x9a, B: 0x9a, A: 0xff}
)

// Bars writes a horizontal bar chart to path (a .png). With log set the
// value axis is logarithmic, for figures spanning orders of magnitude
// (start times from milliseconds to seconds). Bars with no value (0 or
// less) are left out.
func Bars(path, title, unit string, log bool, bars []Bar) error {
	var kept []Bar
	for _, b := range bars {
		if b.Value > 0 && !math.IsInf(b.Value, 0) && !math.IsNaN(b.Value) {
			kept = append(kept, b)
		}
	}
	if len(kept) == 0 {
		return fmt.Errorf("chart %s: no values", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = unit
	// The axis floor: a log axis has no zero, so a bar "absent" from one
	// of the two series below sits there, with no length.
	floor := 0.0
	if log {
		min := math.Inf(1)
		for _, b := range kept {
			min = math.Min(min, b.Value)
		}
		floor = math.Pow(10, math.Floor(math.Log10(min)))
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	// The first bar is drawn at the top: nominal Y runs bottom-up.
	labels := make([]string, len(kept))
	hb := hbars{floor: floor}
	for i, b := range kept {
		j := len(kept) - 1 - i
		labels[j] = b.Label
		hb.bars = append(hb.bars, hbar{float64(j), b.Value, b.Mote})
	}
	p.Add(hb)
	p.NominalY(labels...)
	p.Add(plotter.NewGrid())
	height := vg.Points(60 + 24*float64(len(kept)))
	if err := p.Save(7*vg.Inch, height, path); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return nil
}

// hbars draws bars from the axis floor (0, or a log axis's first decade)
// to their values; gonum's BarChart always starts at 0, which a log axis
// cannot show.
type hbars struct {
	floor float64
	bars  []hbar
}

type hbar struct {
	row, value float64
	mote       bool
}

func (h hbars) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	for _, b := range h.bars {
		col := peerColour
		if b.mote {
			col = moteColour
		}
		x0, x1 := tx(h.floor), tx(b.value)
		y0, y1 := ty(b.row-0.3), ty(b.row+0.3)
		c.FillPolygon(col, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	}
}

func (h hbars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = h.floor, h.floor
	for _, b := range h.bars {
		xmax = math.Max(xmax, b.value)
	}
	return xmin, xmax * 1.05, -0.5, float64(len(h.bars)) - 0.5
}
