using HookBroker.Broker.Configuration;
using HookBroker.Broker.Core;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Tests.Core;

/// <summary>Retry backoff and how each group's policy is resolved from configuration.</summary>
public sealed class GroupPolicyTests
{
    [Fact]
    public void The_defaults_are_the_documented_ones()
    {
        var policy = GroupPolicy.Default;

        Assert.Equal(TimeSpan.FromSeconds(30), policy.AckDeadline);
        Assert.Equal(5, policy.MaxAttempts);
        Assert.Equal(TimeSpan.FromSeconds(1), policy.BackoffInitial);
        Assert.Equal(TimeSpan.FromMinutes(10), policy.BackoffMax);
        Assert.Equal(TimeSpan.FromDays(7), policy.Retention);
    }

    [Fact]
    public void The_first_retry_waits_the_initial_backoff_within_20_percent()
    {
        var random = new Random(1234);
        for (var i = 0; i < 1000; i++)
        {
            var delay = GroupPolicy.Default.Backoff(1, random);
            Assert.InRange(delay, TimeSpan.FromMilliseconds(800), TimeSpan.FromMilliseconds(1200));
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 4)]
    [InlineData(5, 16)]
    [InlineData(10, 512)]
    public void Each_attempt_doubles_the_delay_with_jitter(int attempt, int seconds)
    {
        var random = new Random(attempt);
        var nominal = TimeSpan.FromSeconds(seconds);
        var delays = Enumerable.Range(0, 500).Select(_ => GroupPolicy.Default.Backoff(attempt, random)).ToList();

        Assert.All(delays, d => Assert.InRange(d, nominal * 0.8, nominal * 1.2));
        // The jitter spreads retries: not all the same, and both sides of the nominal delay are used.
        Assert.Contains(delays, d => d < nominal);
        Assert.Contains(delays, d => d > nominal);
    }

    [Fact]
    public void The_jitter_bounds_are_exact()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(800), GroupPolicy.Default.Backoff(1, new FixedRandom(0)));
        Assert.Equal(TimeSpan.FromMilliseconds(1600), GroupPolicy.Default.Backoff(2, new FixedRandom(0)));
        Assert.Equal(TimeSpan.FromMilliseconds(2000), GroupPolicy.Default.Backoff(2, new FixedRandom(0.5)));
        Assert.InRange(GroupPolicy.Default.Backoff(2, new FixedRandom(0.9999999)), TimeSpan.FromMilliseconds(2399), TimeSpan.FromMilliseconds(2400));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(40)]
    [InlineData(41)]
    [InlineData(1000)]
    [InlineData(int.MaxValue)]
    public void Late_attempts_are_capped_at_the_maximum_and_never_above_it(int attempt)
    {
        var random = new Random(attempt);
        var max = GroupPolicy.Default.BackoffMax;
        for (var i = 0; i < 500; i++)
        {
            Assert.InRange(GroupPolicy.Default.Backoff(attempt, random), max * 0.8, max);
        }

        // Jitter upwards is cut at the maximum itself.
        Assert.Equal(max, GroupPolicy.Default.Backoff(attempt, new FixedRandom(0.9999999)));
    }

    [Fact]
    public void Just_below_the_cap_the_upward_jitter_is_cut_at_the_maximum()
    {
        var policy = GroupPolicy.Default with { BackoffInitial = TimeSpan.FromSeconds(1), BackoffMax = TimeSpan.FromSeconds(10) };

        // Attempt 4: nominal 8 s; +20% would be 9.6 s, under the cap. Attempt 5: nominal 10 s (capped), +20% cut to 10 s.
        Assert.Equal(TimeSpan.FromSeconds(9.6), policy.Backoff(4, new FixedRandom(1)));
        Assert.Equal(TimeSpan.FromSeconds(10), policy.Backoff(5, new FixedRandom(1)));
        Assert.Equal(TimeSpan.FromSeconds(8), policy.Backoff(5, new FixedRandom(0)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Attempts_below_one_use_the_initial_backoff(int attempt) =>
        Assert.Equal(TimeSpan.FromSeconds(1), GroupPolicy.Default.Backoff(attempt, new FixedRandom(0.5)));

    [Fact]
    public void A_zero_backoff_retries_at_once()
    {
        var policy = GroupPolicy.Default with { BackoffInitial = TimeSpan.Zero };

        Assert.Equal(TimeSpan.Zero, policy.Backoff(1, new Random(7)));
        Assert.Equal(TimeSpan.Zero, policy.Backoff(30, new Random(7)));
    }

    [Fact]
    public void A_group_without_its_own_entry_gets_the_configured_defaults_over_the_documented_ones()
    {
        var policies = Policies(new BrokerOptions { Defaults = new GroupPolicyOptions { MaxAttempts = 3, MaxBacklog = 50 } });

        var policy = policies.For("email-sender");

        Assert.Equal(3, policy.MaxAttempts);
        Assert.Equal(50, policy.MaxBacklog);
        Assert.Equal(GroupPolicy.Default.AckDeadline, policy.AckDeadline);
        Assert.Equal(GroupPolicy.Default.BackoffInitial, policy.BackoffInitial);
        Assert.Equal(GroupPolicy.Default.Retention, policy.Retention);
        Assert.Equal(3, policies.MaxAttempts("email-sender"));
    }

    [Fact]
    public void A_groups_own_entry_overrides_the_defaults_field_by_field()
    {
        var options = new BrokerOptions { Defaults = new GroupPolicyOptions { MaxAttempts = 3, AckDeadline = TimeSpan.FromSeconds(20) } };
        options.Groups["email-sender"] = new GroupPolicyOptions { AckDeadline = TimeSpan.FromMinutes(2), BackoffMax = TimeSpan.FromSeconds(30) };
        var policies = Policies(options);

        var email = policies.For("email-sender");
        Assert.Equal(TimeSpan.FromMinutes(2), email.AckDeadline);
        Assert.Equal(TimeSpan.FromSeconds(30), email.BackoffMax);
        Assert.Equal(3, email.MaxAttempts);

        var audit = policies.For("audit");
        Assert.Equal(TimeSpan.FromSeconds(20), audit.AckDeadline);
        Assert.Equal(GroupPolicy.Default.BackoffMax, audit.BackoffMax);

        // Group names are case-sensitive, like everywhere else.
        Assert.Equal(TimeSpan.FromSeconds(20), policies.For("Email-Sender").AckDeadline);
    }

    private static GroupPolicies Policies(BrokerOptions options) => new(Options.Create(options));

    /// <summary>A random source that always draws the same value, to pin the jitter's bounds.</summary>
    private sealed class FixedRandom(double value) : Random
    {
        public override double NextDouble() => value;
    }
}
