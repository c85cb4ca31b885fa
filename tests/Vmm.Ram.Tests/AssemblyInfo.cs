// The tests read host-wide and process-wide counters (free huge pages, resident pages, file blocks) and park threads
// in page faults; running them one at a time keeps those numbers attributable and the 2-core machines responsive.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
