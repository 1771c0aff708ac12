namespace HookBroker.Broker.Storage;

/// <summary>
/// What an engine reports, after the change is durable, to the dispatcher of this node. Calls are synchronous and
/// must stay cheap: implementations only signal waiting work. Engines shared by several nodes also report the changes
/// other nodes made.
/// </summary>
public interface IHookStoreListener
{
    /// <summary>Events were stored for these groups: their workers may have new deliveries.</summary>
    void OnEventsAvailable(IReadOnlyCollection<string> groups);

    /// <summary>Events reached an outcome in a group (handled, first failure, dead-lettered).</summary>
    void OnOutcomes(IReadOnlyList<OutcomeNotice> outcomes);

    /// <summary>Groups or their patterns changed.</summary>
    void OnGroupsChanged();

    /// <summary>
    /// Another broker node's housekeeping expired these leases (engines shared by several nodes): the node whose worker
    /// held one frees that worker's capacity. A node's own expiries come back in <see cref="IHookStore.ExpireAsync"/>.
    /// </summary>
    void OnLeasesExpired(IReadOnlyList<ExpiredLease> leases)
    {
    }
}

/// <summary>Per-group policy the engine needs for decisions it makes on its own (lease expiry).</summary>
public interface IGroupPolicies
{
    /// <summary>The max attempts of a group: a delivery failing its max-th attempt is dead-lettered.</summary>
    int MaxAttempts(string group);
}
