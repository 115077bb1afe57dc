package queue

// TickID is the id of a periodic job's job for one tick, for the tests.
var TickID = tickID
