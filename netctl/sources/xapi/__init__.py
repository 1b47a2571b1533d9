"""The xapi client: a full sync, then `event.from`; each batch a `ChangeSet` (`sync`)."""
