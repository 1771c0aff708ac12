using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>
/// A <see cref="TimeProvider"/> over the test host's <see cref="FakeTimeProvider"/>, for tests that watch or disturb how
/// the broker uses its clock: reads the same time, creates its timers there; subclasses override <see cref="CreateTimer"/>.
/// </summary>
internal abstract class FakeClockView : TimeProvider
{
    /// <summary>The host's fake clock (set by <see cref="ReplaceHostClock"/>).</summary>
    public FakeTimeProvider Inner { get; private set; } = null!;

    public override TimeZoneInfo LocalTimeZone => Inner.LocalTimeZone;

    public override long TimestampFrequency => Inner.TimestampFrequency;

    public override DateTimeOffset GetUtcNow() => Inner.GetUtcNow();

    public override long GetTimestamp() => Inner.GetTimestamp();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        Inner.CreateTimer(callback, state, dueTime, period);

    /// <summary>For <see cref="BrokerTestHost.StartAsync"/>'s <c>configureServices</c>: the broker gets this view of the host's clock.</summary>
    public void ReplaceHostClock(IServiceCollection services)
    {
        Inner = (FakeTimeProvider)services.Last(d => d.ServiceType == typeof(TimeProvider)).ImplementationInstance!;
        services.AddSingleton<TimeProvider>(this);
    }
}
