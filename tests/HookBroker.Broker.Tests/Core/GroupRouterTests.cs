using HookBroker.Broker.Core;
using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Tests.Core;

public sealed class GroupRouterTests
{
    [Fact]
    public void Groups_applied_one_by_one_all_route()
    {
        var router = new GroupRouter();
        for (var i = 0; i < 1000; i++)
        {
            router.Apply(new GroupRecord($"g{i}", [$"label.{i}", "all.>"]));
        }

        Assert.Equal(["g7"], router.Route("label.7"));
        Assert.Equal(1000, router.Route("all.x").Length);
        Assert.Equal(1000, router.Version);
    }

    [Fact]
    public void Applying_a_group_with_the_same_patterns_changes_nothing()
    {
        var router = new GroupRouter();
        router.Apply(new GroupRecord("email", ["user_created", "user.*"]));
        var changed = router.Changed;

        router.Apply(new GroupRecord("email", ["user.*", "user_created"]));

        Assert.Equal(1, router.Version);
        Assert.False(changed.IsCompleted);
        router.Apply(new GroupRecord("email", ["user.*"]));
        Assert.Equal(2, router.Version);
        Assert.True(changed.IsCompleted);
        Assert.Empty(router.Route("user_created"));
    }

    [Fact]
    public void A_subscribes_record_that_arrives_after_a_fuller_one_takes_no_pattern_away()
    {
        // Two workers of a group subscribe at once: storage answers the first with {p1} and the second with {p1, p2},
        // and the first answer reaches the router last.
        var router = new GroupRouter();
        router.Include(new GroupRecord("email", ["user_created", "user.*"]));
        var version = router.Version;

        router.Include(new GroupRecord("email", ["user_created"]));

        Assert.Equal(["email"], router.Route("user.renamed"));
        Assert.Equal(version, router.Version);
        router.Include(new GroupRecord("email", ["billing.>"]));
        Assert.Equal(["email"], router.Route("billing.paid"));
        Assert.Equal(["email"], router.Route("user.renamed"));
        Assert.Equal(version + 1, router.Version);
    }

    [Fact]
    public void A_reload_that_says_what_the_view_holds_keeps_it()
    {
        var router = new GroupRouter();
        router.Apply(new GroupRecord("email", ["user_created"]));
        router.Apply(new GroupRecord("audit", ["user.*"]));

        // Read before the second apply: stale by version, but equal to the view, so nothing is replaced.
        Assert.True(router.TryReset([new GroupRecord("audit", ["user.*"]), new GroupRecord("email", ["user_created"])], readAtVersion: 1));
        Assert.Equal(2, router.Version);

        // A stale read that differs is refused; a fresh one replaces the view.
        Assert.False(router.TryReset([new GroupRecord("email", ["user_created"])], readAtVersion: 1));
        Assert.True(router.TryReset([new GroupRecord("email", ["user_created"]), new GroupRecord("billing", ["invoice.>"])], readAtVersion: 2));
        Assert.Equal(["billing"], router.Route("invoice.paid"));
        Assert.Empty(router.Route("user.deleted"));
        Assert.Equal(["email"], router.Route("user_created"));
    }
}
