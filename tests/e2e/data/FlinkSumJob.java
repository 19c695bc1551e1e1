// A tiny bounded Flink job for the real DagJob test (test_dagjob_real_node.py): it sums 1..n (n its
// one argument, from entrypoint_args) on the TaskManager, collects the result into main() — which,
// in application mode, runs in the JobManager — and prints "flink-sum n=<n> sum=<sum>" there, then
// ends: the job finishes, the JobManager exits 0 and the DagJob's flinkJarJob task is Finished.
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.CloseableIterator;

public class FlinkSumJob {
    public static void main(String[] args) throws Exception {
        long n = Long.parseLong(args[0]);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        long sum = 0;
        try (CloseableIterator<Long> it = env.fromSequence(1, n).executeAndCollect("flink-sum")) {
            while (it.hasNext()) {
                sum += it.next();
            }
        }
        System.out.println("flink-sum n=" + n + " sum=" + sum);
    }
}
