/**
 * Where the operator is installed and the names it runs under. Low in the tree because both the manifest generator
 * and the controllers (and the CLI that starts them) need them: the generator writes them into config/, the running
 * operator uses the same names to find its lease and its own namespace.
 */
export const OPERATOR_NAMESPACE = "itechsmart-nextgen";
export const OPERATOR_SERVICE_ACCOUNT = "nextgen-operator";
export const LEADER_ELECTION_ID = "nextgen-operator-leader";
