"""Results: the candidates notice with its objection window, bidders' objections and staff
decisions, the award notice or the failure of a tender (and re-tendering), and each
bidder's signed result letter."""
