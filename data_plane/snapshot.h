// The immutable config a data plane serves from: the router and the services it points at,
// built once from a validated config::v1::Snapshot on the config thread and published through
// Versioned<Snapshot>. A request reads the pointer once and keeps it until it finishes.
#pragma once
// Owned by the data-plane proxy work; see data_plane/README or docs/design.md.
