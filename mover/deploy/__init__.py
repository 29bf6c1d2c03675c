"""What `mover install` puts into a cluster: CRDs generated from Velero's types, RBAC, the
server Deployment, the node-agent DaemonSet and the repository password."""
