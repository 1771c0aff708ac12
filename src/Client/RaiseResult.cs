namespace HookBroker.Client;

/// <summary>The broker's answer to a raise.</summary>
/// <param name="EventId">The stored event's id (the first event's id for a duplicate); empty when no group listens.</param>
/// <param name="RoutedGroups">How many groups the event was routed to; 0 means nobody listens (not stored).</param>
/// <param name="Duplicate">True when the idempotency key was seen inside the broker's window: nothing new was stored.</param>
/// <param name="Outcomes">Wait mode only: one entry per routed group.</param>
public sealed record RaiseResult(string EventId, int RoutedGroups, bool Duplicate, IReadOnlyList<HookGroupOutcome> Outcomes)
{
    /// <summary>True when at least one group got the event.</summary>
    public bool IsRouted => RoutedGroups > 0;
}

/// <summary>What one group did with a wait-mode raise.</summary>
/// <param name="Group">The group's name.</param>
/// <param name="Outcome">Handled, failed, dead-lettered or timed out.</param>
/// <param name="Error">For failed and dead-lettered: the hook's error (or the reason, e.g. "expired").</param>
/// <param name="Attempt">The attempt the outcome refers to (1-based).</param>
/// <param name="WillRetry">For failed: whether the broker will deliver it again.</param>
public sealed record HookGroupOutcome(string Group, HookOutcome Outcome, string Error, int Attempt, bool WillRetry);

/// <summary>A group's outcome for a wait-mode raise.</summary>
public enum HookOutcome
{
    /// <summary>The broker sent no outcome (a newer broker's value this SDK does not know).</summary>
    Unspecified = 0,

    /// <summary>A worker of the group acked it.</summary>
    Handled = 1,

    /// <summary>Its first failed attempt; the event keeps its normal retry course.</summary>
    Failed = 2,

    /// <summary>It went to the group's dead letters (rejected, max attempts or expired).</summary>
    DeadLettered = 3,

    /// <summary>No outcome within the wait timeout.</summary>
    TimedOut = 4,
}
